//! `memcmp` for the wasm module, eight bytes at a time.
//!
//! Why: on wasm32 the standard library's `memcmp` (compiler_builtins) compares one byte per
//! iteration, and every string comparison of the engine goes through it: B-tree lookups by
//! key, the record cache's check that a stored text is unchanged (a few hundred bytes for each
//! of the records every write reads), the cache's key checks. In node's CPU profile of the
//! wasm benchmark it was 2.7 % of a pushing write. compiler_builtins defines the symbol weakly,
//! so this definition takes its place in the module; natively the C library's is used and this
//! file only provides the comparison for its tests.
//!
//! Only this module and the allocator (`alloc.rs`) use `unsafe`: a C `memcmp` takes raw
//! pointers.
#![allow(unsafe_code)]

/// Compare `n` bytes at `a` and `b` as unsigned bytes: negative, zero or positive as the first
/// differing byte of `a` is lower, (none differs), or higher.
///
/// # Safety
/// `a` and `b` must each be valid for reads of `n` bytes.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, and both are readable for n bytes; no alignment is required.
        let (x, y) = unsafe {
            (
                a.add(i).cast::<u64>().read_unaligned(),
                b.add(i).cast::<u64>().read_unaligned(),
            )
        };
        if x != y {
            // The first byte decides first: compare the words as big-endian numbers.
            return if u64::from_be(x) < u64::from_be(y) {
                -1
            } else {
                1
            };
        }
        i += 8;
    }
    while i < n {
        // SAFETY: i < n.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// The module's `memcmp` (see the module documentation).
///
/// # Safety
/// As C's `memcmp`: `a` and `b` valid for reads of `n` bytes.
#[cfg(target_arch = "wasm32")]
#[no_mangle]
#[allow(unreachable_pub)] // a symbol of the module, not an item of the crate
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's contract is `compare`'s.
    unsafe { compare(a, b, n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &[u8], b: &[u8]) -> i32 {
        assert_eq!(a.len(), b.len());
        // SAFETY: both slices hold a.len() bytes.
        unsafe { compare(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    #[test]
    fn orders_as_the_slices_order() {
        let texts: [&[u8]; 6] = [
            b"",
            b"a",
            b"abcdefgh",
            b"abcdefgi",
            b"abcdefghijklmnopq",
            b"\xff\x00",
        ];
        for a in texts {
            for b in texts {
                let n = a.len().min(b.len());
                let (x, y) = (&a[..n], &b[..n]);
                assert_eq!(cmp(x, y).signum(), x.cmp(y) as i32, "{x:?} {y:?}");
            }
        }
        // A difference in every position, in the words and in the tail, either way, with
        // bytes above 0x7f (compared unsigned).
        let base: Vec<u8> = (0..37u8).map(|i| i.wrapping_mul(7)).collect();
        for i in 0..base.len() {
            for d in [1u8, 0x80, 0xff] {
                let mut other = base.clone();
                other[i] = other[i].wrapping_add(d);
                let want = base.cmp(&other) as i32;
                assert_eq!(cmp(&base, &other).signum(), want, "at {i}, +{d}");
                assert_eq!(cmp(&other, &base).signum(), -want, "at {i}, +{d}");
                // Only the bytes up to the difference matter for the earlier prefixes.
                assert_eq!(cmp(&base[..i], &other[..i]), 0);
            }
        }
    }
}
