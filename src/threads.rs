//! fastloss's own rayon pools: sized by `set_num_threads` / `FASTLOSS_NUM_THREADS`, one per recently
//! used size, and rebuilt in a forked child (a pool's threads do not survive `fork`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::ThreadPool;

static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

struct Pools {
    pid: u32,
    /// (thread count, pool), most recently used last.
    by_size: Vec<(usize, Arc<ThreadPool>)>,
}

/// Pools kept for thread counts used recently: switching between, say, 1 and 2 threads reuses a
/// started pool instead of building one (a pool's fresh threads join in late: a kernel called right
/// after a rebuild ran mostly on one thread).
const KEPT_POOLS: usize = 4;

static POOLS: Mutex<Option<Pools>> = Mutex::new(None);

fn default_threads() -> usize {
    std::env::var("FASTLOSS_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The number of threads kernels may use.
pub fn num_threads() -> usize {
    match NUM_THREADS.load(Ordering::Relaxed) {
        0 => {
            let n = default_threads();
            NUM_THREADS.store(n, Ordering::Relaxed);
            n
        }
        n => n,
    }
}

/// Sets the number of threads (at least 1); the next kernel uses a pool of that size.
pub fn set_num_threads(n: usize) {
    NUM_THREADS.store(n.max(1), Ordering::Relaxed);
}

/// The pool for the current process and thread count.
pub fn pool() -> Arc<ThreadPool> {
    let threads = num_threads();
    let pid = std::process::id();
    let mut guard = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    if guard.as_ref().is_some_and(|p| p.pid != pid) {
        // Inherited from the parent across fork: their threads do not exist here, and dropping
        // them could wait on them. Leak them.
        std::mem::forget(guard.take());
    }
    let pools = guard.get_or_insert_with(|| Pools { pid, by_size: Vec::new() });
    if let Some(i) = pools.by_size.iter().position(|(n, _)| *n == threads) {
        let entry = pools.by_size.remove(i);
        let pool = entry.1.clone();
        pools.by_size.push(entry);
        return pool;
    }
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("fastloss-{i}"))
            .build()
            .expect("could not start fastloss's thread pool"),
    );
    if pools.by_size.len() == KEPT_POOLS {
        pools.by_size.remove(0);
    }
    pools.by_size.push((threads, pool.clone()));
    pool
}
