//! The thread that makes checkpoints durable, so that the loop never waits on the
//! disk: the loop takes a checkpoint ([`Store::begin_sync`](super::Store::begin_sync)),
//! hands the job here, and on a later tick hands the result back to the store
//! ([`Store::end_sync`](super::Store::end_sync)). One job at a time.

use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::Duration;

use super::format::Checkpoint;
use super::SyncJob;

/// What a finished job reports: its checkpoint and how the syncs went.
pub type Synced = (Checkpoint, io::Result<()>);

/// The sync thread and its two channels.
pub struct Syncer {
    jobs: Sender<SyncJob>,
    done: Receiver<Synced>,
    busy: bool,
}

impl Syncer {
    /// Starts the thread. It ends when the `Syncer` is dropped (its job channel closes).
    pub fn spawn() -> io::Result<Syncer> {
        let (jobs, queue) = mpsc::channel::<SyncJob>();
        let (report, done) = mpsc::channel();
        thread::Builder::new()
            .name("larder-sync".into())
            .spawn(move || {
                for job in queue {
                    let result = job.run();
                    if report.send((job.checkpoint(), result)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Syncer {
            jobs,
            done,
            busy: false,
        })
    }

    /// No job is running.
    pub fn idle(&self) -> bool {
        !self.busy
    }

    /// Hands `job` to the thread; `false` if the thread is gone (the job is dropped).
    pub fn start(&mut self, job: SyncJob) -> bool {
        self.busy = self.jobs.send(job).is_ok();
        self.busy
    }

    /// The result of the running job, if it has finished. Never blocks.
    pub fn finished(&mut self) -> Option<Synced> {
        let result = self.done.try_recv().ok();
        if result.is_some() {
            self.busy = false;
        }
        result
    }

    /// Waits up to `timeout` for the running job (at shutdown).
    pub fn wait(&mut self, timeout: Duration) -> Option<Synced> {
        if !self.busy {
            return None;
        }
        match self.done.recv_timeout(timeout) {
            Ok(result) => {
                self.busy = false;
                Some(result)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }
}
