/* Linked against libgreet.so with no rpath: it runs only when LD_LIBRARY_PATH finds it. */
void greet(const char *who);

int main(void) {
    greet("uselib");
    return 0;
}
