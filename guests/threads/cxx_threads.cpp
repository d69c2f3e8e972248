// C++ threads with the dynamic libstdc++: std::thread, std::mutex, std::async, atomics.
#include <atomic>
#include <future>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>
int main() {
    std::mutex m; long total = 0; std::vector<std::thread> ts;
    for (int i = 0; i < 8; i++) ts.emplace_back([&] { for (int j = 0; j < 5000; j++) { std::lock_guard<std::mutex> g(m); total++; } });
    for (auto &t : ts) t.join();
    auto f = std::async(std::launch::async, [] { return 6 * 7; });
    std::atomic<int> a{0}; std::thread t2([&] { a = 5; }); t2.join();
    std::cout << total << " " << f.get() << " " << a << "\n";
}
