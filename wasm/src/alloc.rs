//! The module's allocator on wasm32: the standard library's own allocator (dlmalloc), with a
//! system side that grows the linear memory in large steps.
//!
//! Why: in V8 a `memory.grow` costs more the larger the memory already is (measured with Node
//! 20 on this project's machines, growing 64 KiB at a time: 1.4 us per grow at 34 MB, 19 us at
//! 67 MB, 180 to 480 us from 100 MB on). The standard library's dlmalloc asks for exactly the
//! pages it lacks, one 64 KiB page at a time once its heap is full; the engine's cache keeps
//! the host's whole storage, so a busy engine grows the memory every few writes and, with tens
//! of megabytes cached, spent most of its time in those grows (a throughput loop with a
//! 200 MB cache fell from 22,000 to 2,300 writes per second). Growing by at least an eighth of
//! the current size (and at least 1 MiB) makes the number of grows logarithmic in the size.
//!
//! Only this module uses `unsafe`: the `GlobalAlloc` and `dlmalloc::Allocator` contracts are
//! unsafe traits by definition.
#![allow(unsafe_code)]

/// The smallest step the memory grows by, in pages (1 MiB).
const MIN_STEP_PAGES: usize = 16;

/// The number of pages to ask for when `need` pages are missing and the memory has `current`.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn step(need: usize, current: usize) -> usize {
    need.max(current / 8).max(MIN_STEP_PAGES)
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::step;
    use core::arch::wasm32;
    use std::alloc::{GlobalAlloc, Layout};
    use std::cell::UnsafeCell;
    use std::ptr;

    /// The wasm page size.
    const PAGE: usize = 64 * 1024;

    /// Memory pages from `memory.grow`, handed to dlmalloc.
    struct Pages;

    // SAFETY: `alloc` returns either null or a region of fresh pages that nothing else uses
    // (`memory.grow` appends them to the memory and only this allocator grows it); the region is
    // never returned or remapped (`free`, `free_part` and `remap` refuse), as with the standard
    // library's wasm system allocator.
    unsafe impl dlmalloc::Allocator for Pages {
        fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
            let need = size.div_ceil(PAGE);
            let current = wasm32::memory_size(0);
            // The large step first; when the engine's memory limit refuses it, exactly what is
            // needed.
            for pages in [step(need, current), need] {
                let prev = wasm32::memory_grow(0, pages);
                if prev == usize::MAX {
                    continue;
                }
                let base = prev * PAGE;
                let len = pages * PAGE;
                // A region ending at the very top of the 32-bit address space would wrap to 0,
                // which a Rust pointer may not do: leave its last bytes out.
                let len = if base.wrapping_add(len) == 0 {
                    len - 16
                } else {
                    len
                };
                return (base as *mut u8, len, 0);
            }
            (ptr::null_mut(), 0, 0)
        }

        fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
            ptr::null_mut()
        }

        fn free_part(&self, _ptr: *mut u8, _old: usize, _new: usize) -> bool {
            false
        }

        fn free(&self, _ptr: *mut u8, _size: usize) -> bool {
            false
        }

        fn can_release_part(&self, _flags: u32) -> bool {
            false
        }

        fn allocates_zeros(&self) -> bool {
            // Grown pages are zeroed by the engine.
            true
        }

        fn page_size(&self) -> usize {
            PAGE
        }
    }

    /// The global allocator.
    struct Global(UnsafeCell<dlmalloc::Dlmalloc<Pages>>);

    // SAFETY: the module is built for wasm32-unknown-unknown without the `atomics` target feature,
    // so it runs on one thread and no two calls into the allocator can overlap.
    unsafe impl Sync for Global {}

    // SAFETY: each method forwards to dlmalloc with the caller's layout, as the standard library's
    // `System` allocator on wasm32 does, or to its C-shaped counterpart, which takes any pointer
    // of this allocator; the exclusive access `get()` hands out cannot overlap (see the `Sync`
    // impl).
    unsafe impl GlobalAlloc for Global {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            unsafe { (*self.0.get()).malloc(layout.size(), layout.align()) }
        }

        // `free` and `realloc` of dlmalloc 0.2.14 first check, with assertions, that the size
        // given fits the chunk (`validate_size`): 1 % of a pushing write in node's CPU profile
        // for a check of the standard library's own bookkeeping. The C-shaped entry points do
        // the same work without it; any pointer of this allocator may be passed to them.
        unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
            unsafe { (*self.0.get()).c_free(ptr) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            unsafe { (*self.0.get()).calloc(layout.size(), layout.align()) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // dlmalloc's own alignment (2 words): `c_realloc` keeps it. A larger one needs the
            // layout-carrying path, which keeps the alignment.
            if layout.align() <= 2 * std::mem::size_of::<usize>() {
                unsafe { (*self.0.get()).c_realloc(ptr, new_size) }
            } else {
                unsafe { (*self.0.get()).realloc(ptr, layout.size(), layout.align(), new_size) }
            }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Global = Global(UnsafeCell::new(dlmalloc::Dlmalloc::new_with_allocator(
        Pages,
    )));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_grow_with_the_memory() {
        assert_eq!(step(1, 17), MIN_STEP_PAGES);
        assert_eq!(step(40, 17), 40);
        assert_eq!(step(1, 800), 100);
        assert_eq!(step(200, 800), 200);
    }
}
