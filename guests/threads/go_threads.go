// Goroutines on OS threads, as issue 14 asks: channels, sync.WaitGroup, a mutex, time.Sleep, a
// ticker, encoding/json, and the garbage collector under load (runtime.GC with live goroutines).
// Everything it prints is deterministic: results are gathered, then printed in a fixed order.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"
)

type Result struct {
	Worker int     `json:"worker"`
	Sum    int     `json:"sum"`
	Primes []int   `json:"primes"`
	Ratio  float64 `json:"ratio"`
}

func primesBelow(n int) []int {
	var out []int
	for i := 2; i < n; i++ {
		prime := true
		for d := 2; d*d <= i; d++ {
			if i%d == 0 {
				prime = false
				break
			}
		}
		if prime {
			out = append(out, i)
		}
	}
	return out
}

func pipeline(n int) int {
	numbers := make(chan int)
	squares := make(chan int, 4)
	go func() {
		for i := 1; i <= n; i++ {
			numbers <- i
		}
		close(numbers)
	}()
	go func() {
		for x := range numbers {
			squares <- x * x
		}
		close(squares)
	}()
	total := 0
	for s := range squares {
		total += s
	}
	return total
}

func garbage(rounds int) int {
	// Allocate and drop many short-lived objects from several goroutines while GC runs.
	var wg sync.WaitGroup
	var mu sync.Mutex
	kept := 0
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			local := 0
			for r := 0; r < rounds; r++ {
				buf := make([]byte, 4096+r%512)
				buf[len(buf)-1] = byte(g)
				m := map[int]string{r: fmt.Sprint(r)}
				local += int(buf[len(buf)-1]) + len(m[r])
				if r%400 == 0 {
					runtime.GC()
				}
			}
			mu.Lock()
			kept += local
			mu.Unlock()
		}(g)
	}
	wg.Wait()
	return kept
}

func main() {
	fmt.Println("GOMAXPROCS>0:", runtime.GOMAXPROCS(0) > 0)

	var wg sync.WaitGroup
	results := make(chan Result, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			time.Sleep(time.Duration(8-w) * time.Millisecond)
			p := primesBelow(200 + 50*w)
			sum := 0
			for _, x := range p {
				sum += x
			}
			results <- Result{Worker: w, Sum: sum, Primes: p[len(p)-3:], Ratio: float64(sum) / float64(len(p))}
		}(w)
	}
	wg.Wait()
	close(results)
	var all []Result
	for r := range results {
		all = append(all, r)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Worker < all[j].Worker })
	encoded, err := json.Marshal(all)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(string(encoded))
	var decoded []Result
	if err := json.Unmarshal(encoded, &decoded); err != nil || len(decoded) != 8 {
		fmt.Fprintln(os.Stderr, "round trip failed", err)
		os.Exit(1)
	}

	fmt.Println("pipeline:", pipeline(1000))

	ticker := time.NewTicker(2 * time.Millisecond)
	ticks := 0
	for range ticker.C {
		ticks++
		if ticks == 5 {
			break
		}
	}
	ticker.Stop()
	fmt.Println("ticks:", ticks)

	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	before := stats.NumGC
	fmt.Println("garbage:", garbage(2000))
	runtime.ReadMemStats(&stats)
	fmt.Println("collected:", stats.NumGC > before)

	timeout := time.After(5 * time.Second)
	done := make(chan string)
	go func() { time.Sleep(time.Millisecond); done <- "fast" }()
	select {
	case s := <-done:
		fmt.Println("select:", s)
	case <-timeout:
		fmt.Println("select: timeout")
	}
	os.Exit(3)
}
