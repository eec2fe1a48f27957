//! Work spread over every core natively. wasm32 runs the same code in order: it has no threads
//! here.

use std::ops::Range;

fn threads(items: usize) -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    #[cfg(target_arch = "wasm32")]
    let cores = 1;
    cores.min(items).max(1)
}

/// Maps `f` over `items`, keeping their order.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let n = threads(items.len());
    if n == 1 {
        return items.iter().map(f).collect();
    }
    std::thread::scope(|s| {
        let workers: Vec<_> =
            items.chunks(items.len().div_ceil(n)).map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>())).collect();
        workers.into_iter().flat_map(|w| w.join().expect("a views worker panicked")).collect()
    })
}

/// Fills `out`, made of rows of `row_len` values, by calling `f(rows, chunk)` on disjoint runs of
/// whole rows.
pub(crate) fn fill_rows<T: Send>(out: &mut [T], row_len: usize, f: impl Fn(Range<usize>, &mut [T]) + Sync) {
    let rows = out.len() / row_len.max(1);
    let n = threads(rows);
    if n == 1 {
        f(0..rows, out);
        return;
    }
    let per = rows.div_ceil(n);
    std::thread::scope(|s| {
        for (i, chunk) in out.chunks_mut(per * row_len).enumerate() {
            let f = &f;
            s.spawn(move || f(i * per..i * per + chunk.len() / row_len, chunk));
        }
    });
}
