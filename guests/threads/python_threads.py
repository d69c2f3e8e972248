"""Python threading as programs use it: a thread pool, a queue, a lock, an event and a timer."""

import concurrent.futures
import queue
import threading

total = 0
lock = threading.Lock()


def work(n: int) -> int:
    global total
    for _ in range(1000):
        with lock:
            total += 1
    return n * n


with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
    squares = list(pool.map(work, range(8)))

items: queue.Queue = queue.Queue()


def producer() -> None:
    for i in range(50):
        items.put(i)
    items.put(None)


thread = threading.Thread(target=producer)
thread.start()
got = []
while (item := items.get()) is not None:
    got.append(item)
thread.join()
event = threading.Event()
timer = threading.Timer(0.05, event.set)
timer.start()
timer.join()
print(total, squares, sum(got), event.wait(5), threading.active_count())
