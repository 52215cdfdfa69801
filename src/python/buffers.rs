//! Memory for large returned gradients, recycled when NumPy frees the array.
//!
//! A gradient of tens of MB is above glibc's largest mmap threshold (32 MiB on 64-bit), so a plain
//! `np.empty` gets fresh pages each call and the OS zeroes every page on first touch. Measured here:
//! allocating and filling a 32 MiB array took 9.7 ms against 3.1 ms for filling one that was reused,
//! more than the loss kernel itself. Arrays of at least [`MIN_BYTES`] that fastloss returns take their
//! memory from this cache and give it back when they are freed, so a training loop that drops the
//! previous step's gradient gets warm pages. The cache keeps at most `limit` bytes (256 MiB by
//! default, `set_limit(0)` turns it off), dropping the oldest blocks first.

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::ptr::NonNull;
use std::sync::Mutex;

use numpy::ndarray::{ArrayViewD, IxDyn};
use numpy::{Element, PyArrayDyn};
use pyo3::prelude::*;

/// Smaller arrays come from NumPy's allocator, which malloc recycles well.
pub const MIN_BYTES: usize = 1 << 20;
pub const DEFAULT_LIMIT: usize = 1 << 28;
const ALIGN: usize = 64;

static CACHE: Mutex<Cache> = Mutex::new(Cache { free: Vec::new(), bytes: 0, limit: DEFAULT_LIMIT });

/// An owned, 64-byte aligned allocation.
struct Block {
    ptr: NonNull<u8>,
    bytes: usize,
}

// SAFETY: a Block is uniquely owned memory with no interior state; moving or sharing the handle
// between threads is as safe as for a Box<[u8]>.
unsafe impl Send for Block {}
unsafe impl Sync for Block {}

impl Block {
    fn layout(bytes: usize) -> Layout {
        Layout::from_size_align(bytes, ALIGN).expect("array size overflows")
    }

    fn new(bytes: usize) -> Block {
        // SAFETY: bytes >= MIN_BYTES > 0.
        let ptr = unsafe { alloc(Self::layout(bytes)) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| handle_alloc_error(Self::layout(bytes)));
        ask_for_huge_pages(ptr, bytes);
        Block { ptr, bytes }
    }
}

/// Asks Linux to back the block's whole 4 KiB pages with transparent huge pages, as NumPy does
/// for its own arrays of 4 MiB and more. Where THP is in `madvise` mode (the usual default), first
/// touching a 40 MB block in 4 KiB pages costs several times the loss kernel: with the cache off,
/// mse's value_and_grad at 10^7 took 29.6–33.7 ms without this advice and 8.9–9.5 ms with it
/// (`python benches/loops.py alloc`). Only advice: a refusal changes nothing but speed, so its
/// result is ignored.
fn ask_for_huge_pages(ptr: NonNull<u8>, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        const MADV_HUGEPAGE: std::ffi::c_int = 14; // <linux/mman.h>
        unsafe extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: std::ffi::c_int) -> std::ffi::c_int;
        }
        let start = (ptr.as_ptr() as usize).next_multiple_of(PAGE);
        let end = (ptr.as_ptr() as usize + bytes) / PAGE * PAGE;
        if end > start {
            // SAFETY: [start, end) lies inside the block just allocated; madvise with this advice
            // reads and writes no memory.
            unsafe { madvise(start as *mut std::ffi::c_void, end - start, MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, bytes);
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.bytes)) }
    }
}

struct Cache {
    /// Free blocks, oldest first.
    free: Vec<Block>,
    bytes: usize,
    limit: usize,
}

impl Cache {
    fn take(&mut self, bytes: usize) -> Option<Block> {
        let i = self.free.iter().rposition(|b| b.bytes == bytes)?;
        self.bytes -= bytes;
        Some(self.free.remove(i))
    }

    fn give(&mut self, block: Block) {
        if block.bytes > self.limit {
            return;
        }
        self.bytes += block.bytes;
        self.free.push(block);
        self.trim();
    }

    fn trim(&mut self) {
        while self.bytes > self.limit {
            let oldest = self.free.remove(0);
            self.bytes -= oldest.bytes;
        }
    }
}

/// The base object of an array made by [`empty`]: returns the block to the cache when NumPy drops it.
#[pyclass(frozen, module = "fastloss._core")]
struct CachedMemory {
    block: Mutex<Option<Block>>,
}

impl Drop for CachedMemory {
    fn drop(&mut self) {
        let block = self.block.get_mut().ok().and_then(Option::take);
        if let (Some(block), Ok(mut cache)) = (block, CACHE.lock()) {
            cache.give(block);
        }
    }
}

/// An uninitialised C-contiguous array: from the cache when it is large, else from NumPy.
pub(crate) fn empty<'py, T: Element>(py: Python<'py>, shape: &[usize]) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let bytes = shape.iter().product::<usize>() * std::mem::size_of::<T>();
    if bytes < MIN_BYTES {
        // SAFETY: callers write every element before the array is seen.
        return Ok(unsafe { PyArrayDyn::<T>::new(py, shape, false) });
    }
    let cached = CACHE.lock().ok().and_then(|mut cache| cache.take(bytes));
    let block = cached.unwrap_or_else(|| Block::new(bytes));
    let data = block.ptr.as_ptr().cast::<T>();
    let owner = Bound::new(py, CachedMemory { block: Mutex::new(Some(block)) })?;
    // SAFETY: `data` points to `bytes` bytes, aligned for T, owned by `owner`, which the new array
    // keeps alive as its base; nothing else refers to the block.
    unsafe {
        let view = ArrayViewD::from_shape_ptr(IxDyn(shape), data);
        Ok(PyArrayDyn::borrow_from_array(&view, owner.into_any()))
    }
}

/// Sets how many bytes of freed blocks the cache keeps; returns the previous limit.
pub(crate) fn set_limit(limit: usize) -> usize {
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let previous = std::mem::replace(&mut cache.limit, limit);
    cache.trim();
    previous
}
