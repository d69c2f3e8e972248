/* Demo, a snapshot is copy-on-write too: 64 pages filled, then snapshot_point() (where the
 * demo takes a snapshot of the whole machine), then writes in three steps of 8, 16 and 32
 * pages, calling step() after each, where the demo counts the frames the live machine
 * still shares with the snapshot. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define PAGES 64

__attribute__((noinline)) void snapshot_point(void) { __asm__ volatile("" ::: "memory"); }
__attribute__((noinline)) void step(int written) { __asm__ volatile("" : : "r"(written) : "memory"); }

int main(void) {
    char *data = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(data, 's', PAGES * 4096);
    snapshot_point();
    int written = 0;
    for (int batch = 8; batch <= 32; batch *= 2) {
        for (int i = 0; i < batch; i++, written++) data[written * 4096] = 'w';
        step(written);
    }
    printf("wrote %d of %d pages after the snapshot\n", written, PAGES);
    return 0;
}
