//! The one worker pool every transfer uses: a fixed number of threads take
//! jobs in order, the first error stops the others after their current
//! job, and progress events from every worker reach the caller's thread.

use crate::client::lock;
use crate::error::{Error, Result};
use crate::progress::ProgressEvent;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

/// Runs `work` on every job with up to `workers` threads and returns the
/// results in job order, or the first error. `work` sends its progress
/// through the given sender; `progress` sees the events on this thread.
pub(crate) fn run<J, R>(
    workers: usize,
    jobs: Vec<J>,
    progress: &dyn Fn(ProgressEvent),
    work: impl Fn(&J, &mpsc::Sender<ProgressEvent>) -> Result<R> + Sync,
) -> Result<Vec<R>>
where
    J: Send + Sync,
    R: Send,
{
    let n = jobs.len();
    let queue = Mutex::new(jobs.iter().enumerate().collect::<VecDeque<_>>());
    let done: Mutex<Vec<Option<R>>> = Mutex::new((0..n).map(|_| None).collect());
    let abort = AtomicBool::new(false);
    let first_err: Mutex<Option<Error>> = Mutex::new(None);
    let (tx, rx) = mpsc::channel::<ProgressEvent>();
    std::thread::scope(|s| {
        for _ in 0..workers.max(1).min(n.max(1)) {
            let tx = tx.clone();
            let (queue, done, abort, first_err, work) = (&queue, &done, &abort, &first_err, &work);
            s.spawn(move || loop {
                if abort.load(Ordering::Relaxed) {
                    break;
                }
                let Some((i, job)) = lock(queue).pop_front() else {
                    break;
                };
                match work(job, &tx) {
                    Ok(r) => lock(done)[i] = Some(r),
                    Err(e) => {
                        abort.store(true, Ordering::Relaxed);
                        lock(first_err).get_or_insert(e);
                        break;
                    }
                }
            });
        }
        // The workers hold the only senders left: the loop ends when they
        // all finish.
        drop(tx);
        for ev in rx {
            progress(ev);
        }
    });
    if let Some(e) = first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(done
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect())
}
