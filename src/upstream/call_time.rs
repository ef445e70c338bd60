//! Time spent waiting on upstream tool calls within one request, so the
//! metrics can tell the gateway's own time from the upstream's. The
//! request handler runs its work inside [`measure`]; the pool adds each
//! call's time with [`add`] (outside a measured request it is dropped).

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

tokio::task_local! {
    static SPENT: Cell<Option<Duration>>;
}

/// Runs `work`, and says how long the upstream calls made inside it took
/// in all (`None` when it made none).
pub async fn measure<F: Future>(work: F) -> (F::Output, Option<Duration>) {
    SPENT
        .scope(Cell::new(None), async move {
            let output = work.await;
            (output, SPENT.with(Cell::get))
        })
        .await
}

/// Counts `spent` against the request being measured, if any.
pub fn add(spent: Duration) {
    let _ = SPENT.try_with(|total| total.set(Some(total.get().unwrap_or_default() + spent)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_inside_a_measured_request_add_up_and_others_are_not_counted() {
        add(Duration::from_millis(5)); // outside: dropped, no panic
        let ((), none) = measure(async {}).await;
        assert_eq!(none, None);
        let ((), spent) = measure(async {
            add(Duration::from_millis(2));
            add(Duration::from_millis(3));
        })
        .await;
        assert_eq!(spent, Some(Duration::from_millis(5)));
    }
}
