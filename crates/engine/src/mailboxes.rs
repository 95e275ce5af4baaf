//! What this node keeps of each worker between its polls: the resumed runs handed to it that a
//! poll has not picked up (its mailbox), which of its polls is the newest, and when a poll of it
//! last compared what the worker holds with what storage counts as its (and whether that is due
//! again: at most every [`RECONCILE_EVERY`], or at once when a poll leaves out a run the previous
//! answer carried).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use waitpoint_storage::{Claim, HeldRun, transitions};
use waitpoint_types::{RunId, Timestamp};

use crate::workers::WorkerKey;

/// How often, at most, a worker's poll on this node gives back the runs the worker holds
/// without knowing (a claim whose answer was lost, a run it could not take): reading all it
/// holds costs as much as it holds, up to its slots.
pub(crate) const RECONCILE_EVERY: Duration = Duration::from_millis(250);

/// How long a run handed to a worker may take to reach its mailbox here, under load, counted
/// from the time its hand-off was asked for (it waits for its group commit, which may take a
/// second in a burst on PostgreSQL): a [`Comparison::Settled`] leaves it to a later one.
const IN_TRANSIT: Duration = Duration::from_secs(5);

/// What a poll gives back of the runs its worker does not hold (besides those of an answer it
/// did not read, which go back at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    /// Those handed to it before [`IN_TRANSIT`]: one handed since may still be on its way here.
    Settled,
    /// All of them: it is a new process.
    Everything,
}

impl Comparison {
    /// The claim's `handed_by` for a comparison at `now`: runs last changed by then go back.
    pub(crate) fn handed_by(self, now: Timestamp) -> Timestamp {
        match self {
            Self::Settled => now.saturating_sub(IN_TRANSIT),
            Self::Everything => now,
        }
    }
}

/// Each worker's [`Mailbox`] on this node.
#[derive(Debug, Default)]
pub(crate) struct Mailboxes {
    workers: Mutex<HashMap<WorkerKey, Mailbox>>,
}

/// One worker's state between its polls on this node.
#[derive(Debug, Default)]
struct Mailbox {
    /// Runs handed to the worker that its polls have not picked up yet.
    claims: Vec<Claim>,
    /// The number of the worker's newest poll on this node: only that one takes the claims.
    poll: u64,
    /// Wakes the worker's polls waiting here.
    notify: Arc<Notify>,
    /// Whether runs were handed to the worker since a poll of it last compared what it holds.
    handed: bool,
    /// When a poll of it last compared what it holds, and for which session.
    compared: Option<(Timestamp, Option<String>)>,
    /// The runs the last answer to its poll carried, with their epochs: until a poll lists
    /// them, the worker may not have read that answer.
    answered: Vec<(RunId, u64)>,
}

impl Mailboxes {
    fn lock(&self) -> MutexGuard<'_, HashMap<WorkerKey, Mailbox>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a run resumed for `worker` in its mailbox and wakes every poll of it waiting here:
    /// an older one its client gave up on answers nothing and leaves the claim to the newest.
    pub(crate) fn hand(&self, worker: WorkerKey, claim: Claim) {
        let mut mailboxes = self.lock();
        let mailbox = mailboxes.entry(worker).or_default();
        mailbox.claims.push(claim);
        mailbox.handed = true;
        mailbox.notify.notify_waiters();
    }

    /// How many runs handed to `worker` wait for a poll to pick them up.
    pub(crate) fn pending(&self, worker: &WorkerKey) -> usize {
        self.lock().get(worker).map_or(0, |mailbox| mailbox.claims.len())
    }

    /// Makes a poll of `worker` its newest on this node, and answers its number and the wake-up
    /// of the worker's mailbox. A worker polls once at a time: an older poll still held here is
    /// one its client gave up on (as a worker does when a slot frees, to ask again with it),
    /// which is woken to answer nothing, so that what is handed to the worker goes to this one
    /// instead of to a connection no one reads.
    pub(crate) fn begin_poll(&self, worker: &WorkerKey) -> (u64, Arc<Notify>) {
        let mut mailboxes = self.lock();
        let mailbox = mailboxes.entry(worker.clone()).or_default();
        mailbox.poll += 1;
        mailbox.notify.notify_waiters();
        (mailbox.poll, mailbox.notify.clone())
    }

    /// The runs handed to `worker` that it has not picked up, for its poll numbered `poll`;
    /// `None` once a newer poll replaced that one.
    pub(crate) fn take(&self, worker: &WorkerKey, poll: u64) -> Option<Vec<Claim>> {
        match self.lock().get_mut(worker) {
            Some(mailbox) if mailbox.poll != poll => None,
            Some(mailbox) => Some(std::mem::take(&mut mailbox.claims)),
            None => Some(Vec::new()),
        }
    }

    /// Whether `worker`'s poll numbered `poll` is still its newest on this node.
    pub(crate) fn newest(&self, worker: &WorkerKey, poll: u64) -> bool {
        self.lock().get(worker).is_none_or(|mailbox| mailbox.poll == poll)
    }

    /// Puts back runs taken from `worker`'s mailbox by a poll that could not deliver them.
    pub(crate) fn put_back(&self, worker: &WorkerKey, claims: Vec<Claim>) {
        if claims.is_empty() {
            return;
        }
        self.lock().entry(worker.clone()).or_default().claims.extend(claims);
    }

    /// Drops from `worker`'s mailbox the runs among `given_back`: they were handed to it, then
    /// given back before it picked them up, and run under a newer epoch from now on.
    pub(crate) fn drop_given_back(&self, worker: &WorkerKey, given_back: &[RunId]) {
        if let Some(mailbox) = self.lock().get_mut(worker) {
            mailbox.claims.retain(|claim| !given_back.contains(&claim.run.id));
        }
    }

    /// Whether a poll of `worker` (of `session`) at `now` is to give back what the worker does
    /// not hold, and which of it: everything for a new session; what is settled (and the runs
    /// of an answer it did not read) when `unconfirmed` (see
    /// [`answer_unconfirmed`](Self::answer_unconfirmed)) or when this node has not had it do so
    /// for [`RECONCILE_EVERY`]. Notes it.
    pub(crate) fn compare_due(
        &self,
        worker: &WorkerKey,
        session: Option<&str>,
        now: Timestamp,
        unconfirmed: bool,
    ) -> Option<Comparison> {
        let mut mailboxes = self.lock();
        let mailbox = mailboxes.entry(worker.clone()).or_default();
        let same_session = mailbox.compared.as_ref().is_some_and(|(_, last)| last.as_deref() == session);
        if !unconfirmed
            && same_session
            && let Some((at, _)) = &mailbox.compared
            && now.duration_since(*at) < RECONCILE_EVERY
            && *at <= now
        {
            return None;
        }
        mailbox.compared = Some((now, session.map(str::to_owned)));
        mailbox.handed = false;
        Some(if same_session { Comparison::Settled } else { Comparison::Everything })
    }

    /// Whether runs were handed to `worker` since a poll of it last compared what it holds: one
    /// may have gone to a poll its client gave up on, and the next comparison gives it back.
    pub(crate) fn handed_since_compared(&self, worker: &WorkerKey) -> bool {
        self.lock().get(worker).is_some_and(|mailbox| mailbox.handed)
    }

    /// Notes the runs an answer to `worker`'s poll carries.
    pub(crate) fn answered(&self, worker: &WorkerKey, claims: &[Claim]) {
        let runs = claims.iter().map(|claim| (claim.run.id.clone(), claim.run.epoch)).collect();
        self.lock().entry(worker.clone()).or_default().answered = runs;
    }

    /// The runs the last answer to `worker`'s poll carried that `holding`, the list of its
    /// next poll, does not hold: that answer may have been lost (the worker gave up on the poll
    /// as it was answered), or the runs ended since. Forgets that answer.
    pub(crate) fn answer_unconfirmed(&self, worker: &WorkerKey, holding: &[HeldRun]) -> Vec<RunId> {
        let answered = self.lock().get_mut(worker).map(|mailbox| std::mem::take(&mut mailbox.answered));
        answered.map_or_else(Vec::new, |answered| {
            transitions::given_back(holding, &answered).into_iter().cloned().collect()
        })
    }

    /// Forgets `worker`.
    pub(crate) fn forget(&self, worker: &WorkerKey) {
        self.lock().remove(worker);
    }

    /// Keeps only the workers `keep` names.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&WorkerKey) -> bool) {
        self.lock().retain(|worker, _| keep(worker));
    }
}
