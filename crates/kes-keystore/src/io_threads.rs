//! A fixed set of threads for the fs key store's blocking file I/O.
//!
//! tokio's blocking pool starts a thread whenever none is idle at the moment
//! a task arrives, up to 512, and ends each after 10 s without work. For the
//! fs store that made the thread count follow bursts: 54 threads behind 16
//! client connections in the soak, 61 after one burst late in the run; and a
//! flood of requests could start hundreds of threads, each with its stack.
//! The store's threads are started when it opens and end when its last
//! handle is dropped, so their number is a constant, and work beyond them
//! waits its turn in a queue (bounded by the requests the server admits).

use std::panic::{self, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use crate::Error;

type Job = Box<dyn FnOnce() + Send>;

/// The I/O threads of one store.
#[derive(Debug)]
pub(crate) struct IoThreads {
    jobs: mpsc::Sender<Job>,
}

impl IoThreads {
    /// Starts `count` threads named `name`.
    pub(crate) fn start(name: &str, count: usize) -> Result<IoThreads, Error> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..count.max(1) {
            let queue = Arc::clone(&queue);
            thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || work(&queue))
                .map_err(|e| Error::other("fs: cannot start the I/O threads").with_source(e))?;
        }
        // If a spawn failed, the threads already started end with the
        // sender dropped here.
        Ok(IoThreads { jobs })
    }

    /// Runs `f` on one of the threads. Dropping the returned future before
    /// a thread has taken up `f` leaves `f` out, so the queue never does
    /// work for requests that are gone; once begun, file I/O is finished
    /// and only its result thrown away.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                if done.is_closed() {
                    return;
                }
                // A panic is a bug in the store; the caller gets an error
                // and the thread stays for the next job.
                if let Ok(value) = panic::catch_unwind(AssertUnwindSafe(f)) {
                    let _ = done.send(value);
                }
            }))
            .map_err(|_| Error::other("fs: the I/O threads have ended"))?;
        result
            .await
            .map_err(|_| Error::other("fs: I/O task failed"))
    }
}

/// One thread's loop: the next job, until every sender is gone.
fn work(queue: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for a job, never while
        // running one.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(mpsc::RecvError) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn runs_jobs_on_a_fixed_number_of_threads() {
        let threads = Arc::new(IoThreads::start("kes-test-io", 3).unwrap());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let names = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let mut jobs = tokio::task::JoinSet::new();
        for i in 0..30 {
            let (threads, running, most, names) = (
                threads.clone(),
                running.clone(),
                most.clone(),
                names.clone(),
            );
            jobs.spawn(async move {
                let job = move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    names.lock().unwrap().insert(thread::current().id());
                    thread::sleep(Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                    i * 2
                };
                threads.run(job).await.unwrap()
            });
        }
        let mut results = jobs.join_all().await;
        results.sort_unstable();
        assert_eq!(results, (0..30).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(
            most.load(Ordering::SeqCst),
            3,
            "all three threads worked at once"
        );
        assert_eq!(names.lock().unwrap().len(), 3, "and no other thread did");
    }

    #[tokio::test]
    async fn a_job_whose_caller_is_gone_is_left_out() {
        let threads = Arc::new(IoThreads::start("kes-test-io", 1).unwrap());
        let (release, wait) = mpsc::channel::<()>();
        // Keeps the one thread busy until released.
        let busy = tokio::spawn({
            let threads = threads.clone();
            async move { threads.run(move || wait.recv().unwrap()).await }
        });
        let ran = Arc::new(AtomicUsize::new(0));
        let queued = {
            let ran = ran.clone();
            tokio::spawn({
                let threads = threads.clone();
                async move {
                    threads
                        .run(move || ran.fetch_add(1, Ordering::SeqCst))
                        .await
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        queued.abort();
        let _ = queued.await;
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        // The thread is free again and has passed the abandoned job.
        assert_eq!(threads.run(|| 7).await.unwrap(), 7);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone() {
        let threads = IoThreads::start("kes-test-io", 1).unwrap();
        let failed = threads.run(|| -> u8 { panic!("a bug") }).await;
        assert!(failed.is_err());
        // The one thread survived it.
        assert_eq!(threads.run(|| 7).await.unwrap(), 7);
    }
}
