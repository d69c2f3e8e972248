// Rust threads: std::thread::spawn, Arc<Mutex>, an mpsc channel, join.
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
fn main() {
    let counter = Arc::new(Mutex::new(0));
    let (tx, rx) = mpsc::channel();
    let mut handles = vec![];
    for i in 0..8 {
        let c = Arc::clone(&counter);
        let tx = tx.clone();
        handles.push(thread::spawn(move || {
            for _ in 0..1000 { *c.lock().unwrap() += 1; }
            tx.send(i * i).unwrap();
        }));
    }
    drop(tx);
    for h in handles { h.join().unwrap(); }
    let sum: i32 = rx.iter().sum();
    println!("{} {}", *counter.lock().unwrap(), sum);
}
