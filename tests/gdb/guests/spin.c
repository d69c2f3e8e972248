/* Computes for ever without a system call: only Ctrl-C (0x03) or a kill stops it. */
volatile unsigned long counter;

int main(void) {
    for (;;)
        counter++;
}
