//! fastloss's own rayon pool: sized by `set_num_threads` / `FASTLOSS_NUM_THREADS`, rebuilt when the
//! size changes, and rebuilt in a forked child (a pool's threads do not survive `fork`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::ThreadPool;

static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

struct Pool {
    pid: u32,
    threads: usize,
    pool: Arc<ThreadPool>,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

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

/// Sets the number of threads (at least 1); the pool is rebuilt on its next use.
pub fn set_num_threads(n: usize) {
    NUM_THREADS.store(n.max(1), Ordering::Relaxed);
}

/// The pool for the current process and thread count.
pub fn pool() -> Arc<ThreadPool> {
    let threads = num_threads();
    let pid = std::process::id();
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = guard.as_ref() {
        if p.pid == pid && p.threads == threads {
            return p.pool.clone();
        }
    }
    let stale = guard.take();
    if let Some(p) = stale {
        if p.pid != pid {
            // Inherited from the parent across fork: its threads do not exist here, and
            // dropping it could wait on them. Leak it.
            std::mem::forget(p);
        }
    }
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("fastloss-{i}"))
            .build()
            .expect("could not start fastloss's thread pool"),
    );
    *guard = Some(Pool { pid, threads, pool: pool.clone() });
    pool
}
