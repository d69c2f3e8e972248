// C++ with the dynamic libstdc++: exceptions across frames, RTTI, containers, iostreams,
// static constructors and destructors.
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

struct Noisy {
    std::string name;
    explicit Noisy(std::string n) : name(std::move(n)) { std::cout << "construct " << name << "\n"; }
    ~Noisy() { std::cout << "destroy " << name << "\n"; }
};

static Noisy global("global");

struct Shape {
    virtual ~Shape() = default;
    virtual double area() const = 0;
};
struct Square : Shape {
    double side;
    explicit Square(double s) : side(s) {}
    double area() const override { return side * side; }
};

static int parse(const std::string &text) {
    Noisy guard("guard for " + text);
    std::size_t used = 0;
    int value = std::stoi(text, &used);
    if (used != text.size()) throw std::invalid_argument("trailing junk in " + text);
    return value;
}

int main() {
    std::vector<std::string> words{"pear", "apple", "fig", "apple"};
    std::map<std::string, int> counts;
    for (const auto &w : words) counts[w]++;
    for (const auto &[w, n] : counts) std::cout << w << " " << n << "\n";
    std::sort(words.begin(), words.end());
    std::ostringstream joined;
    for (const auto &w : words) joined << w << ",";
    std::cout << joined.str() << "\n";
    for (const char *text : {"42", "7x", "oops"}) {
        try {
            std::cout << "parsed " << parse(text) << "\n";
        } catch (const std::invalid_argument &e) {
            std::cout << "caught invalid_argument: " << e.what() << "\n";
        }
    }
    std::unique_ptr<Shape> shape = std::make_unique<Square>(3);
    std::cout << "area " << shape->area() << " is a Square: " << (dynamic_cast<Square *>(shape.get()) != nullptr)
              << "\n";
    try {
        throw std::runtime_error("thrown through main");
    } catch (const std::exception &e) {
        std::cout << "caught " << e.what() << "\n";
    }
    return 3;
}
