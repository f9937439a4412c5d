//! The download scheduler: which blocks to offer which source (see `peer::swarm`).
//!
//! Sources are the full peers of the validated plan (seeds) and peers downloading the same
//! list (partial sources, which hold only some blocks and join while the download runs).
//! Each source keeps up to `depth` requests in flight and gets the next when one ends, so
//! faster sources do more. A request offers the source the wanted blocks it holds, rarest
//! first (held by the fewest partial sources; ties go in an order rotated from a random
//! start, so downloaders begin in different places), and the source picks among them (see
//! `server::blocks`). Partial sources are offered first; a seed is then offered a wide
//! choice among the blocks no partial source that can be asked now holds (all of them, if
//! those are busy), and picks the ones it has sent least, so each block leaves a seed
//! about once and the partial sources spread it. Offered blocks are held back from other
//! requests until the pick is known; then the rest go back. A failed request's blocks go
//! back for any source, up to `MAX_RETRY_COUNT` tries from seeds each (a partial source
//! that fails has most often finished and left: that costs it its place, not the blocks
//! their tries); a source that fails `PEER_FAILURE_LIMIT` times in a row
//! is dropped (corrupt data: at once), but the last seed, while partial sources take part,
//! only after `SEED_REPRIEVES` more such rounds. A source that is busy (its upload slots taken, or
//! it holds none of what was offered yet) waits `BUSY_BACKOFF`, not counted against it.
//! Once every block left is in flight, an idle source duplicates blocks in flight elsewhere
//! (endgame) so one slow source cannot stall the finish; the first copy to arrive wins.
//! Only a source's fault (`TransferError::is_peer_fault`) is retried and counted against
//! it; any other error (a full local disk) fails the download at once and blames no one.
//!
//! Pure bookkeeping: no I/O; the caller passes the time.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::TransferError;
use crate::peer::swarm::{Bitmap, BlockLayout};
use crate::proto::{MAX_OFFERED_BLOCKS, MAX_PICKED_BYTES};

/// Tries per block before the download fails.
pub const MAX_RETRY_COUNT: u32 = 5;
/// Consecutive failures after which a source is dropped from this download.
pub const PEER_FAILURE_LIMIT: u32 = 3;
/// How many times the last seed is not dropped while partial sources take part (see
/// `count_failure`): it is dropped after `PEER_FAILURE_LIMIT` x (1 + this) failures.
const SEED_REPRIEVES: u32 = 3;
/// Fetches of one block at the same time during the endgame.
const ENDGAME_COPIES: usize = 2;
/// A block is fetched a second time only once its first fetch has run this long: the
/// endgame is for a slow source's last blocks, not for every block of a small game.
pub const ENDGAME_AFTER: Duration = Duration::from_secs(4);
/// How long a busy source is left alone.
pub const BUSY_BACKOFF: Duration = Duration::from_secs(1);
/// Busy answers in a row after which a source counts as failed once (five minutes of
/// waiting for a slot: upload slots rotate every few seconds, so this is a stuck source).
const BUSY_LIMIT: u32 = 300;
/// Entries of the wanted set looked at to fill one offer to a partial source.
const SCAN_LIMIT: usize = 16_384;
/// What a source may have in flight at once, at least and at most. A source starts at the
/// least and earns more as it delivers (each delivered byte adds one, as TCP's slow start
/// does); each progress tick then sets it to what the source delivers in
/// [`BUDGET_SECONDS`]. So a fast peer on loopback keeps 4 answers of 8 MiB in flight, and
/// a seed sharing a 10 MB/s link with 30 downloaders is not promised 32 MiB by each of
/// them at the start (the whole game, several times over, before any swarming).
const MIN_BUDGET: u64 = 2 << 20;
const MAX_BUDGET: u64 = 32 << 20;
const BUDGET_SECONDS: f64 = 2.0;

pub type RequestId = u64;

/// What a source holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A full peer of the plan: every block.
    Seed,
    /// A peer downloading the same list: the blocks its availability says.
    Partial,
}

#[derive(Debug)]
struct Source {
    kind: SourceKind,
    /// For a partial source, what it holds (`None` once it has everything).
    holds: Option<Bitmap>,
    requests: HashSet<RequestId>,
    /// Bytes it may have in flight, and has (see [`MIN_BUDGET`]).
    budget: u64,
    outstanding: u64,
    consecutive_failures: u32,
    /// Times it was not dropped though it failed enough (the last seed of a swarm).
    reprieves: u32,
    busy_answers: u32,
    dropped: bool,
    cooling_until: Option<Instant>,
    last_error: Option<String>,
}

impl Source {
    fn has(&self, block: u32) -> bool {
        self.holds.as_ref().is_none_or(|holds| holds.get(block))
    }

    /// A seed, or a partial source that has everything now.
    fn holds_all(&self) -> bool {
        self.holds.is_none()
    }

    /// Taking part and not cooling off after a `Busy`.
    fn can_ask(&self, now: Instant) -> bool {
        !self.dropped && self.cooling_until.is_none_or(|until| until <= now)
    }
}

#[derive(Debug)]
struct InFlight {
    source: SocketAddr,
    started: Instant,
    /// Counted against the source's budget: what was wanted, then what was picked.
    bytes: u64,
    offered: Vec<u32>,
    /// Known once the source's answer header arrived.
    picked: Option<Vec<u32>>,
}

/// One request to send: offer `offered` to `source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub source: SocketAddr,
    pub request: RequestId,
    pub offered: Vec<u32>,
    /// How many of them the source may pick.
    pub want: u32,
}

#[derive(Debug)]
pub struct WorkQueue {
    layout: Arc<BlockLayout>,
    depth: usize,
    done: Vec<bool>,
    remaining: usize,
    attempts: Vec<u32>,
    /// Partial sources holding each block.
    rarity: Vec<u16>,
    /// Tie-break order of each block.
    rank: Vec<u32>,
    /// Blocks neither done, offered nor picked: (rarity, rank, block).
    wanted: BTreeSet<(u16, u32, u32)>,
    /// Blocks offered to a request whose pick is not known yet.
    offered: Vec<bool>,
    /// Requests fetching each picked block.
    fetchers: HashMap<u32, Vec<RequestId>>,
    requests: HashMap<RequestId, InFlight>,
    next_request: RequestId,
    sources: BTreeMap<SocketAddr, Source>,
    exhausted: Option<(u32, String)>,
    fatal: Option<TransferError>,
}

/// What a finished request means.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Completion {
    /// Blocks delivered first by this request (the others were duplicates).
    pub first: Vec<u32>,
    /// Other requests whose every picked block is now done: abort them.
    pub redundant: Vec<(SocketAddr, RequestId)>,
}

impl WorkQueue {
    /// A queue for every block of `layout` not in `have`, from the `seeds`; `rotation` is
    /// where the tie-break order starts (random per download).
    pub fn new(layout: Arc<BlockLayout>, have: &[bool], seeds: &[SocketAddr], depth: usize, rotation: u32) -> Self {
        let total = layout.total();
        let rank: Vec<u32> = (0..total)
            .map(|block| (block + total - rotation % total.max(1)) % total.max(1))
            .collect();
        let done: Vec<bool> = (0..total as usize)
            .map(|b| have.get(b).copied().unwrap_or(false))
            .collect();
        let wanted = (0..total)
            .filter(|block| !done[*block as usize])
            .map(|block| (0, rank[block as usize], block))
            .collect();
        let mut queue = WorkQueue {
            depth: depth.max(1),
            remaining: done.iter().filter(|done| !**done).count(),
            done,
            attempts: vec![0; total as usize],
            rarity: vec![0; total as usize],
            rank,
            wanted,
            offered: vec![false; total as usize],
            fetchers: HashMap::new(),
            requests: HashMap::new(),
            next_request: 0,
            sources: BTreeMap::new(),
            exhausted: None,
            fatal: None,
            layout,
        };
        for seed in seeds {
            queue.add_source(*seed, SourceKind::Seed, None);
        }
        queue
    }

    pub fn is_complete(&self) -> bool {
        self.remaining == 0
    }

    /// Sources still taking part.
    pub fn live_sources(&self) -> impl Iterator<Item = (SocketAddr, SourceKind)> + '_ {
        self.sources
            .iter()
            .filter(|(_, source)| !source.dropped)
            .map(|(addr, source)| (*addr, source.kind))
    }

    /// Whether `addr` is (or was) a source of this download.
    pub fn knows(&self, addr: SocketAddr) -> bool {
        self.sources.contains_key(&addr)
    }

    /// Whether source `addr` holds every block (a seed, or a partial source that finished).
    pub fn holds_all(&self, addr: SocketAddr) -> bool {
        self.sources.get(&addr).is_some_and(Source::holds_all)
    }

    /// Partial sources still taking part.
    pub fn partial_sources(&self) -> usize {
        self.live_sources()
            .filter(|(_, kind)| *kind == SourceKind::Partial)
            .count()
    }

    /// Whether each source gets one request of one block at a time: while partial sources
    /// take part. Every uplink is then shared by the swarm, and a block counts (is
    /// verified, can be passed on) only once whole: blocks sent many at once to each
    /// downloader all crawl, and the others wait for them (README, "LAN swarm harness").
    /// Alone with seeds, a download keeps several large requests in flight to each.
    fn one_block_at_a_time(&self) -> bool {
        self.sources
            .values()
            .any(|source| !source.dropped && !source.holds_all())
    }

    /// Sources with at least one request in flight.
    pub fn active_sources(&self) -> usize {
        self.sources
            .values()
            .filter(|source| !source.requests.is_empty())
            .count()
    }

    /// Adds a source (a partial one holding `holds`); a known address is left as it is.
    pub fn add_source(&mut self, addr: SocketAddr, kind: SourceKind, holds: Option<Bitmap>) {
        if self.sources.contains_key(&addr) {
            return;
        }
        let source = Source {
            kind,
            holds: None,
            requests: HashSet::new(),
            budget: MIN_BUDGET,
            outstanding: 0,
            consecutive_failures: 0,
            reprieves: 0,
            busy_answers: 0,
            dropped: false,
            cooling_until: None,
            last_error: None,
        };
        self.sources.insert(addr, source);
        if kind == SourceKind::Partial {
            let holds = holds.unwrap_or_else(|| Bitmap::empty(self.layout.total()));
            let blocks: Vec<u32> = holds.iter().collect();
            if let Some(source) = self.sources.get_mut(&addr) {
                source.holds = Some(Bitmap::empty(self.layout.total()));
            }
            self.source_holds(addr, &blocks);
        }
    }

    /// A partial source now holds `blocks` too.
    pub fn source_holds(&mut self, addr: SocketAddr, blocks: &[u32]) {
        let Some(source) = self.sources.get_mut(&addr) else {
            return;
        };
        let Some(holds) = source.holds.as_mut() else { return };
        let mut new = Vec::new();
        for block in blocks {
            if holds.set(*block) {
                new.push(*block);
            }
        }
        if source.dropped {
            return;
        }
        for block in new {
            self.change_rarity(block, 1);
        }
    }

    /// A partial source now holds everything: it is a source of every block like a seed
    /// (its blocks no longer count as rare-making copies: everyone can get them from it).
    pub fn source_holds_all(&mut self, addr: SocketAddr) {
        let held: Vec<u32> = match self.sources.get(&addr) {
            Some(source) if !source.dropped => source.holds.iter().flat_map(Bitmap::iter).collect(),
            _ => Vec::new(),
        };
        for block in held {
            self.change_rarity(block, -1);
        }
        if let Some(source) = self.sources.get_mut(&addr) {
            source.holds = None;
        }
    }

    fn change_rarity(&mut self, block: u32, by: i32) {
        let index = block as usize;
        let (old, rank) = (self.rarity[index], self.rank[index]);
        let new = u16::try_from((i32::from(old) + by).max(0)).unwrap_or(u16::MAX);
        self.rarity[index] = new;
        if self.wanted.remove(&(old, rank, block)) {
            self.wanted.insert((new, rank, block));
        }
    }

    fn want_again(&mut self, block: u32) {
        let index = block as usize;
        if !self.done[index] && !self.offered[index] && !self.fetchers.contains_key(&block) {
            self.wanted.insert((self.rarity[index], self.rank[index], block));
        }
    }

    /// Whether the download can no longer finish.
    pub fn is_failed(&self) -> bool {
        self.fatal.is_some() || self.exhausted.is_some() || (!self.is_complete() && !self.has_live_seed())
    }

    fn has_live_seed(&self) -> bool {
        self.sources
            .values()
            .any(|source| !source.dropped && (source.kind == SourceKind::Seed || source.holds_all()))
    }

    /// Why the download cannot finish, once it cannot (see [`WorkQueue::is_failed`]).
    /// Takes a fatal error out: once it returns `Some`, give up.
    pub fn take_failure(&mut self) -> Option<TransferError> {
        if let Some(fatal) = self.fatal.take() {
            return Some(fatal);
        }
        if let Some((block, error)) = &self.exhausted {
            return Some(TransferError::PeersFailed(format!(
                "a block failed {MAX_RETRY_COUNT} times (block {block}; last error: {error})"
            )));
        }
        if !self.is_complete() && !self.has_live_seed() {
            let errors: Vec<String> = self
                .sources
                .iter()
                .filter(|(_, source)| source.kind == SourceKind::Seed)
                .map(|(addr, source)| format!("{addr}: {}", source.last_error.as_deref().unwrap_or("dropped")))
                .collect();
            return Some(TransferError::PeersFailed(format!(
                "every peer failed ({})",
                errors.join("; ")
            )));
        }
        None
    }

    /// Hands out work: each live source that is not cooling off fills its request slots,
    /// one slot per source per round so sources share the rarest blocks fairly.
    pub fn assign(&mut self, now: Instant) -> Vec<Assignment> {
        let mut assigned = Vec::new();
        if self.is_failed() {
            return assigned;
        }
        // A small game is shared out among the sources, not all offered to the first.
        let ready_sources = self
            .sources
            .values()
            .filter(|source| source.can_ask(now) && source.requests.len() < self.depth)
            .count();
        let share = (self.wanted.len() / ready_sources.max(1)).max(1);
        // A seed's offers split the wanted blocks among the requests seeds can still take.
        let seed_requests: usize = self
            .sources
            .values()
            .filter(|source| source.can_ask(now) && source.holds_all())
            .map(|source| self.depth.saturating_sub(source.requests.len()))
            .sum();
        let seed_share = (self.wanted.len() / seed_requests.max(1)).max(1);
        let depth = if self.one_block_at_a_time() { 1 } else { self.depth };
        loop {
            let mut progressed = false;
            // Partial sources first: they can serve only what they hold, and a seed's wide
            // offer would hold those blocks back from them until its pick is known.
            let mut ready: Vec<(bool, SocketAddr)> = self
                .sources
                .iter()
                .filter(|(_, source)| {
                    source.can_ask(now) && source.requests.len() < depth && source.outstanding < source.budget
                })
                .map(|(addr, source)| (source.holds_all(), *addr))
                .collect();
            ready.sort_unstable();
            let ready = ready.into_iter().map(|(_, addr)| addr);
            for addr in ready {
                let share = if self.holds_all(addr) { seed_share } else { share };
                let (offered, want, bytes) = self.offer_for(addr, now, share);
                if offered.is_empty() {
                    continue;
                }
                let request = self.next_request;
                self.next_request += 1;
                if let Some(source) = self.sources.get_mut(&addr) {
                    source.requests.insert(request);
                    source.outstanding += bytes;
                    source.cooling_until = None;
                }
                self.requests.insert(
                    request,
                    InFlight {
                        source: addr,
                        started: now,
                        bytes,
                        offered: offered.clone(),
                        picked: None,
                    },
                );
                assigned.push(Assignment {
                    source: addr,
                    request,
                    offered,
                    want,
                });
                progressed = true;
            }
            if !progressed {
                return assigned;
            }
        }
    }

    /// The blocks to offer `addr`: wanted ones it holds, rarest first, held back from other
    /// requests; else (endgame) blocks in flight elsewhere that it holds. Twice what its
    /// budget has room for, so it has a choice; with how many it may pick and their bytes.
    fn offer_for(&mut self, addr: SocketAddr, now: Instant, share: usize) -> (Vec<u32>, u32, u64) {
        let Some(source) = self.sources.get(&addr) else {
            return (Vec::new(), 0, 0);
        };
        let room = if self.one_block_at_a_time() {
            1 // with_want: one block
        } else {
            source
                .budget
                .saturating_sub(source.outstanding)
                .clamp(1, MAX_PICKED_BYTES)
        };
        let (mut offered, mut bytes) = (Vec::new(), 0);
        let holds_all = source.holds_all();
        // A source of every block (a seed) gets a wide choice: it picks the blocks it has
        // sent least, which only it knows, so each block leaves it about once.
        let most = share.min(MAX_OFFERED_BLOCKS);
        let most_bytes = if holds_all { u64::MAX } else { 2 * room };
        let full_offer = |offered: &Vec<u32>, bytes: u64| offered.len() >= most || bytes >= most_bytes;
        // Partial sources to leave blocks to: a block one of them holds is theirs to send,
        // not a seed's (the seed's upload is for what nobody else has yet). One that is
        // busy counts while partial sources are sending us something; when none is, the
        // seed gets everything rather than leave us idle.
        let askable: Vec<&Bitmap> = if holds_all {
            let partials_sending = self
                .sources
                .values()
                .any(|other| !other.dropped && !other.holds_all() && !other.requests.is_empty());
            self.sources
                .values()
                .filter(|other| {
                    if partials_sending {
                        !other.dropped
                    } else {
                        other.can_ask(now)
                    }
                })
                .filter_map(|other| other.holds.as_ref())
                .collect()
        } else {
            Vec::new()
        };
        for (rarity, _, block) in self.wanted.iter().take(SCAN_LIMIT) {
            if full_offer(&offered, bytes) {
                break;
            }
            let elsewhere = *rarity > 0 && askable.iter().any(|holds| holds.get(*block));
            if source.has(*block) && !elsewhere {
                offered.push(*block);
                bytes += self.layout.block_len(*block).unwrap_or(0);
            }
        }
        if !offered.is_empty() {
            for block in &offered {
                let index = *block as usize;
                self.wanted.remove(&(self.rarity[index], self.rank[index], *block));
                self.offered[index] = true;
            }
            return self.with_want(offered, room);
        }
        // Endgame, once every block left is in flight: blocks picked by other requests that
        // have run a while, fewest copies first. (Not before: on a slow LAN most requests
        // run that long, and a source with nothing new for us would duplicate all along.)
        if !self.wanted.is_empty() {
            return (Vec::new(), 0, 0);
        }
        let mine: HashSet<RequestId> = source.requests.clone();
        let slow = |request: &RequestId| {
            self.requests
                .get(request)
                .is_some_and(|in_flight| now.duration_since(in_flight.started) >= ENDGAME_AFTER)
        };
        let mut duplicates: Vec<(usize, u32)> = self
            .fetchers
            .iter()
            .filter(|(block, fetchers)| {
                // A slower request may still fetch a block another already delivered.
                !self.done[**block as usize]
                    && fetchers.len() < ENDGAME_COPIES
                    && !fetchers.iter().any(|request| mine.contains(request))
                    && fetchers.iter().all(slow)
                    && source.has(**block)
            })
            .map(|(block, fetchers)| (fetchers.len(), *block))
            .collect();
        duplicates.sort_unstable();
        for (_, block) in duplicates {
            if full_offer(&offered, bytes) {
                break;
            }
            offered.push(block);
            bytes += self.layout.block_len(block).unwrap_or(0);
        }
        self.with_want(offered, room)
    }

    /// How many of `offered` fit `room` bytes (at least one), and their bytes.
    fn with_want(&self, offered: Vec<u32>, room: u64) -> (Vec<u32>, u32, u64) {
        let (mut want, mut bytes) = (0u32, 0);
        for block in &offered {
            let len = self.layout.block_len(*block).unwrap_or(0);
            if want > 0 && bytes + len > room {
                break;
            }
            want += 1;
            bytes += len;
        }
        (offered, want, bytes)
    }

    /// What `addr` delivered over the last while, in bytes a second: its budget becomes
    /// [`BUDGET_SECONDS`] of that, within [`MIN_BUDGET`]..[`MAX_BUDGET`].
    pub fn source_rate(&mut self, addr: SocketAddr, bytes_per_second: f64) {
        if let Some(source) = self.sources.get_mut(&addr)
            && bytes_per_second > 0.0
        {
            source.budget = ((bytes_per_second * BUDGET_SECONDS) as u64).clamp(MIN_BUDGET, MAX_BUDGET);
        }
    }

    /// The source of `request` picked `picked` of what it was offered; the rest go back.
    pub fn picked(&mut self, request: RequestId, picked: &[u32]) {
        let Some(in_flight) = self.requests.get_mut(&request) else {
            return;
        };
        in_flight.picked = Some(picked.to_vec());
        let picked_bytes: u64 = picked.iter().filter_map(|block| self.layout.block_len(*block)).sum();
        let wanted_bytes = std::mem::replace(&mut in_flight.bytes, picked_bytes);
        if let Some(source) = self.sources.get_mut(&in_flight.source) {
            source.outstanding = source.outstanding - wanted_bytes.min(source.outstanding) + picked_bytes;
        }
        let offered = std::mem::take(&mut in_flight.offered);
        for block in picked {
            self.fetchers.entry(*block).or_default().push(request);
        }
        let picked: HashSet<u32> = picked.iter().copied().collect();
        for block in offered {
            self.offered[block as usize] = false;
            if !picked.contains(&block) {
                self.want_again(block);
            }
        }
    }

    /// Ends `request`, returning its blocks (picked, or still only offered) for others.
    fn end(&mut self, request: RequestId) -> Option<InFlight> {
        let mut in_flight = self.requests.remove(&request)?;
        if let Some(source) = self.sources.get_mut(&in_flight.source) {
            source.requests.remove(&request);
            source.outstanding = source.outstanding.saturating_sub(in_flight.bytes);
        }
        for block in std::mem::take(&mut in_flight.offered) {
            self.offered[block as usize] = false;
            self.want_again(block);
        }
        for block in in_flight.picked.iter().flatten() {
            if let Some(fetchers) = self.fetchers.get_mut(block) {
                fetchers.retain(|other| *other != request);
                if fetchers.is_empty() {
                    self.fetchers.remove(block);
                }
            }
            self.want_again(*block);
        }
        Some(in_flight)
    }

    /// `request` delivered `blocks` (verified and durable).
    pub fn complete(&mut self, request: RequestId, blocks: &[u32]) -> Completion {
        let mut completion = Completion::default();
        for block in blocks {
            let index = *block as usize;
            if index < self.done.len() && !self.done[index] {
                self.done[index] = true;
                self.remaining -= 1;
                let rank = self.rank[index];
                self.wanted.remove(&(self.rarity[index], rank, *block));
                completion.first.push(*block);
            }
        }
        let Some(in_flight) = self.end(request) else {
            return completion;
        };
        if let Some(source) = self.sources.get_mut(&in_flight.source) {
            source.consecutive_failures = 0;
            source.busy_answers = 0;
            // Slow start: what it delivered, it may have in flight too.
            source.budget = (source.budget + in_flight.bytes).min(MAX_BUDGET);
        }
        // Requests fetching only blocks that are now done are useless: they end here (the
        // caller aborts their tasks, which then report nothing).
        for (other, fetching) in &self.requests {
            if let Some(picked) = &fetching.picked
                && picked.iter().all(|block| self.done[*block as usize])
            {
                completion.redundant.push((fetching.source, *other));
            }
        }
        for (_, other) in &completion.redundant {
            self.end(*other);
        }
        completion
    }

    /// The source of `request` could not serve it now (busy, or none of the offered blocks
    /// yet): its blocks go back and it is left alone for [`BUSY_BACKOFF`].
    pub fn busy(&mut self, request: RequestId, now: Instant, reason: &str) {
        let Some(in_flight) = self.end(request) else { return };
        let Some(source) = self.sources.get_mut(&in_flight.source) else {
            return;
        };
        source.cooling_until = Some(now + BUSY_BACKOFF);
        source.busy_answers += 1;
        if source.busy_answers >= BUSY_LIMIT {
            source.busy_answers = 0;
            self.count_failure(
                in_flight.source,
                format!("busy for {BUSY_LIMIT} tries: {reason}"),
                false,
            );
        }
    }

    /// `request` failed. Returns whether its source has now been dropped. An error that is
    /// not the source's fault fails the download instead (the first one is kept).
    pub fn fail(&mut self, request: RequestId, error: TransferError) -> bool {
        let Some(in_flight) = self.end(request) else {
            return false;
        };
        if !error.is_peer_fault() {
            self.fatal.get_or_insert(error);
            return false;
        }
        let reason = error.to_string();
        // A partial source that fails (most often: it finished and left) costs it its
        // place, not the blocks their tries: those count only against seeds.
        let from_seed = self
            .sources
            .get(&in_flight.source)
            .is_some_and(|source| source.kind == SourceKind::Seed);
        for block in in_flight.picked.iter().flatten().filter(|_| from_seed) {
            let index = *block as usize;
            if self.done[index] {
                continue;
            }
            self.attempts[index] += 1;
            if self.attempts[index] >= MAX_RETRY_COUNT {
                self.exhausted.get_or_insert((*block, reason.clone()));
            }
        }
        // A partial source that fails once is dropped: most often it has just finished and
        // left, and a request to a peer that is gone waits out its deadline.
        self.count_failure(in_flight.source, reason, error.drops_peer_at_once() || !from_seed)
    }

    fn count_failure(&mut self, addr: SocketAddr, reason: String, at_once: bool) -> bool {
        let Some(source) = self.sources.get_mut(&addr) else {
            return false;
        };
        source.consecutive_failures += 1;
        source.last_error = Some(reason);
        if source.dropped || !(at_once || source.consecutive_failures >= PEER_FAILURE_LIMIT) {
            return false;
        }
        // The last seed of a swarm is let off a few times: on a LAN link shared by thirty
        // downloaders its connections time out now and then, and dropping it would fail a
        // download that the partial sources have nearly done.
        let last_seed_of_a_swarm = source.kind == SourceKind::Seed
            && !at_once
            && source.reprieves < SEED_REPRIEVES
            && self.sources.iter().all(|(other_addr, other)| {
                *other_addr == addr || other.dropped || !(other.kind == SourceKind::Seed || other.holds_all())
            })
            && self.sources.values().any(|other| !other.dropped && !other.holds_all());
        let Some(source) = self.sources.get_mut(&addr) else {
            return false;
        };
        if last_seed_of_a_swarm {
            source.reprieves += 1;
            source.consecutive_failures = 0;
            return false;
        }
        source.dropped = true;
        let held: Vec<u32> = source.holds.iter().flat_map(Bitmap::iter).collect();
        if source.kind == SourceKind::Partial {
            for block in held {
                self.change_rarity(block, -1);
            }
        }
        true
    }

    /// The requests in flight to a dropped source, which the caller aborts; their blocks
    /// go back without counting as a try.
    pub fn take_requests(&mut self, addr: SocketAddr) -> Vec<RequestId> {
        let requests: Vec<RequestId> = self
            .sources
            .get(&addr)
            .map(|source| source.requests.iter().copied().collect())
            .unwrap_or_default();
        for request in &requests {
            self.end(*request);
        }
        requests
    }

    /// Drops a partial source that left (it stopped answering availability requests).
    pub fn drop_source(&mut self, addr: SocketAddr, reason: String) -> Vec<RequestId> {
        if self.sources.get(&addr).is_some_and(|source| !source.dropped) {
            self.count_failure(addr, reason, true);
        }
        self.take_requests(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::BLOCK_SIZE;
    use crate::proto::GameFileDescription;

    fn peer(n: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], n))
    }

    fn layout(blocks: u64) -> Arc<BlockLayout> {
        let files = [GameFileDescription {
            path: "a.zip".into(),
            size: blocks * BLOCK_SIZE,
            is_dir: false,
            hash: None,
        }];
        Arc::new(BlockLayout::new(&files).unwrap())
    }

    /// A queue whose seeds have earned the largest budget (see `budgets_...` for the ramp).
    fn queue(blocks: u64, seeds: &[SocketAddr], depth: usize) -> WorkQueue {
        let mut queue = WorkQueue::new(layout(blocks), &[], seeds, depth, 0);
        for seed in seeds {
            queue.source_rate(*seed, 1e12);
        }
        queue
    }

    #[test]
    fn budgets_start_small_grow_with_what_is_delivered_and_follow_the_rate() {
        let seed = peer(1);
        let mut queue = WorkQueue::new(layout(200), &[], &[seed], 4, 0);
        let now = Instant::now();
        let first = queue.assign(now);
        assert_eq!(first.len(), 1, "a new source gets one small request");
        assert_eq!(
            (first[0].want, first[0].offered.len()),
            (2, 50),
            "2 MiB wanted, of a quarter of the blocks (one of the seed's 4 requests) to choose from"
        );
        queue.picked(first[0].request, &first[0].offered[..2]);
        queue.complete(first[0].request, &first[0].offered[..2]);
        let grown: u32 = queue.assign(now).iter().map(|a| a.want).sum();
        assert_eq!(grown, 4, "what it delivered, it may have in flight too");
        queue.source_rate(seed, 1e12);
        assert_eq!(queue.sources[&seed].budget, MAX_BUDGET);
        queue.source_rate(seed, 2.5e6);
        assert_eq!(
            queue.sources[&seed].budget, 5_000_000,
            "two seconds of a 2.5 MB/s source"
        );
    }

    fn peer_error(reason: &str) -> TransferError {
        TransferError::Peer(reason.to_owned())
    }

    fn disk_full() -> TransferError {
        TransferError::Local {
            path: "/games/openarena/a.zip".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
            free: Some(0),
        }
    }

    /// Picks the first `n` offered blocks of each assignment.
    fn pick(queue: &mut WorkQueue, assigned: &[Assignment], n: usize) -> Vec<Vec<u32>> {
        assigned
            .iter()
            .map(|a| {
                let picked: Vec<u32> = a.offered.iter().copied().take(n).collect();
                queue.picked(a.request, &picked);
                picked
            })
            .collect()
    }

    #[test]
    fn offers_are_disjoint_until_picked_then_the_rest_goes_back() {
        let (a, b) = (peer(1), peer(2));
        let mut queue = queue(64, &[a, b], 2);
        let now = Instant::now();
        let assigned = queue.assign(now);
        assert_eq!(assigned.len(), 4, "two requests per source");
        let all: Vec<u32> = assigned.iter().flat_map(|a| a.offered.clone()).collect();
        assert_eq!(all.len(), 64, "16 blocks (two answers' worth) per offer");
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 64, "no block offered twice");
        pick(&mut queue, &assigned, 8);
        let first = &assigned[0];
        let completion = queue.complete(first.request, &first.offered[..8]);
        assert_eq!(completion.first, first.offered[..8]);
        let next = queue.assign(now);
        assert_eq!(next.len(), 1, "the source that finished gets the next request");
        assert!(next[0].offered.iter().all(|block| !first.offered[..8].contains(block)));
        assert_eq!(
            next[0].offered[0], first.offered[8],
            "an unpicked block is wanted again first"
        );
    }

    #[test]
    fn rarest_blocks_are_offered_first_and_partial_sources_get_only_what_they_hold() {
        let (seed, p1, p2) = (peer(1), peer(2), peer(3));
        let mut queue = queue(40, &[seed], 1);
        let mut holds = Bitmap::empty(40);
        for block in 0..20 {
            holds.set(block);
        }
        queue.add_source(p1, SourceKind::Partial, Some(holds.clone()));
        queue.add_source(p2, SourceKind::Partial, Some(holds));
        let assigned = queue.assign(Instant::now());
        let seed_offer = &assigned.iter().find(|a| a.source == seed).unwrap().offered;
        assert!(
            seed_offer.iter().all(|block| *block >= 20),
            "the seed is offered what no partial holds: {seed_offer:?}"
        );
        for partial in [p1, p2] {
            let offer = &assigned.iter().find(|a| a.source == partial).unwrap().offered;
            assert!(!offer.is_empty() && offer.iter().all(|block| *block < 20), "{offer:?}");
        }
    }

    #[test]
    fn a_seed_chooses_among_what_no_askable_partial_holds_and_gets_the_rest_when_they_are_busy() {
        let (seed, partial) = (peer(1), peer(2));
        let mut queue = queue(40, &[seed], 1);
        let mut holds = Bitmap::empty(40);
        for block in 0..10 {
            holds.set(block);
        }
        queue.add_source(partial, SourceKind::Partial, Some(holds));
        let now = Instant::now();
        let assigned = queue.assign(now);
        let to = |source| assigned.iter().find(|a| a.source == source).unwrap().clone();
        let seed_offer: HashSet<u32> = to(seed).offered.into_iter().collect();
        assert_eq!(
            seed_offer,
            (10..40).collect(),
            "the seed chooses among every block the partial source does not hold"
        );
        queue.busy(to(partial).request, now, "slots taken");
        queue.picked(to(seed).request, &[]);
        queue.complete(to(seed).request, &[]);
        let again = queue.assign(now);
        assert_eq!(again.len(), 1, "the partial source cools off");
        assert!(
            again[0].source == seed && (0..10).all(|block| again[0].offered.contains(&block)),
            "while it does, the seed is offered its blocks too: {again:?}"
        );
    }

    #[test]
    fn in_a_swarm_each_source_sends_one_block_at_a_time_and_a_seed_alone_its_full_depth() {
        let (seed, partial) = (peer(1), peer(2));
        let mut lone = queue(40, &[seed], 4);
        let alone = lone.assign(Instant::now());
        assert_eq!(alone.len(), 4, "a seed alone gets its full depth: {alone:?}");
        assert!(alone.iter().all(|a| a.want > 1), "of many blocks each: {alone:?}");

        let mut queue = queue(40, &[seed], 4);
        let mut holds = Bitmap::empty(40);
        for block in 0..10 {
            holds.set(block);
        }
        queue.add_source(partial, SourceKind::Partial, Some(holds));
        queue.source_rate(partial, 1e12);
        let now = Instant::now();
        let swarming = queue.assign(now);
        let mut sources: Vec<SocketAddr> = swarming.iter().map(|a| a.source).collect();
        sources.sort_unstable();
        assert_eq!(sources, [seed, partial], "one request each: {swarming:?}");
        assert!(
            swarming.iter().all(|a| a.want == 1),
            "of one block, so it arrives soon and spreads: {swarming:?}"
        );
        assert!(queue.assign(now).is_empty(), "no second one while they run");
        let to_seed = swarming.iter().find(|a| a.source == seed).unwrap();
        let block = to_seed.offered[0];
        queue.picked(to_seed.request, &[block]);
        queue.complete(to_seed.request, &[block]);
        let next = queue.assign(now);
        assert_eq!(
            next.iter().map(|a| (a.source, a.want)).collect::<Vec<_>>(),
            [(seed, 1)],
            "the seed's next when its first ended: {next:?}"
        );
    }

    #[test]
    fn failed_blocks_are_retried_elsewhere_and_repeat_offenders_dropped() {
        let (a, b) = (peer(1), peer(2));
        let mut queue = queue(200, &[a, b], 1);
        let now = Instant::now();
        for round in 0..PEER_FAILURE_LIMIT {
            let assigned = queue.assign(now);
            let mine = assigned
                .iter()
                .find(|x| x.source == a)
                .expect("a gets work while live")
                .clone();
            queue.picked(mine.request, &mine.offered[..4]);
            let dropped = queue.fail(mine.request, peer_error("timeout"));
            assert_eq!(dropped, round + 1 == PEER_FAILURE_LIMIT);
            // Its blocks go back to the front, so a gets them again; each failure is a try.
            assert_eq!(
                queue.attempts[mine.offered[0] as usize],
                round + 1,
                "a picked block's try counts"
            );
        }
        assert_eq!(queue.live_sources().map(|(addr, _)| addr).collect::<Vec<_>>(), [b]);
        assert!(queue.assign(now).iter().all(|x| x.source == b));
    }

    /// How many failures in a row (connection lost before any pick) drop the seed `seed`.
    fn failures_until_dropped(queue: &mut WorkQueue, seed: SocketAddr) -> u32 {
        for failures in 1..100 {
            let now = Instant::now();
            let assigned = queue.assign(now);
            let mine = assigned.iter().find(|a| a.source == seed).expect("the seed is asked");
            if queue.fail(mine.request, peer_error("connection lost")) {
                return failures;
            }
            for other in assigned.iter().filter(|a| a.source != seed) {
                queue.busy(other.request, now, "slots taken");
            }
        }
        panic!("the seed was never dropped");
    }

    #[test]
    fn the_last_seed_of_a_swarm_is_dropped_only_after_its_reprieves() {
        let (seed, partial) = (peer(1), peer(2));
        let mut alone = queue(64, &[seed], 1);
        assert_eq!(failures_until_dropped(&mut alone, seed), PEER_FAILURE_LIMIT);
        assert!(alone.is_failed());

        let mut swarm = queue(64, &[seed], 1);
        swarm.add_source(partial, SourceKind::Partial, Some(Bitmap::empty(64)));
        swarm.source_holds(partial, &[0, 1]);
        assert_eq!(
            failures_until_dropped(&mut swarm, seed),
            PEER_FAILURE_LIMIT * (1 + SEED_REPRIEVES),
            "while partial sources take part, the last seed is given more rounds"
        );
        assert!(swarm.is_failed(), "and then the download fails as before");

        // With another full source left, a failing seed is dropped as any source is.
        let other = peer(3);
        let mut two = queue(64, &[seed, other], 1);
        two.add_source(partial, SourceKind::Partial, Some(Bitmap::empty(64)));
        assert_eq!(failures_until_dropped(&mut two, seed), PEER_FAILURE_LIMIT);
        assert!(!two.is_failed());
    }

    #[test]
    fn a_block_failing_too_often_fails_the_download() {
        let a = peer(1);
        let mut queue = queue(1, &[a], 1);
        for _ in 0..MAX_RETRY_COUNT {
            let assigned = queue.assign(Instant::now());
            assert_eq!(assigned.len(), 1);
            queue.picked(assigned[0].request, &[0]);
            queue.fail(assigned[0].request, peer_error("bad"));
            queue.sources.get_mut(&a).unwrap().consecutive_failures = 0;
        }
        let reason = queue.take_failure().expect("download failed").to_string();
        assert!(reason.contains("failed 5 times") && reason.contains("bad"), "{reason}");
        assert!(queue.assign(Instant::now()).is_empty());
    }

    #[test]
    fn partial_sources_that_fail_and_leave_do_not_use_up_a_blocks_tries() {
        let seed = peer(1);
        let mut queue = queue(1, &[seed], 1);
        queue.sources.get_mut(&seed).unwrap().cooling_until = Some(Instant::now() + BUSY_BACKOFF);
        for n in 0..MAX_RETRY_COUNT + 2 {
            let partial = peer(10 + n as u16);
            queue.add_source(partial, SourceKind::Partial, Some(Bitmap::full(1)));
            let assigned = queue.assign(Instant::now());
            assert_eq!(assigned.len(), 1);
            assert_eq!(assigned[0].source, partial);
            queue.picked(assigned[0].request, &[0]);
            queue.fail(assigned[0].request, peer_error("connection lost"));
            queue.drop_source(partial, "left".into());
        }
        assert!(queue.take_failure().is_none(), "the seed can still send the block");
    }

    #[test]
    fn a_partial_source_that_fails_once_is_dropped_and_its_block_goes_to_the_seed() {
        let (seed, partial) = (peer(1), peer(2));
        let mut queue = queue(1, &[seed], 1);
        queue.sources.get_mut(&seed).unwrap().cooling_until = Some(Instant::now() + BUSY_BACKOFF);
        queue.add_source(partial, SourceKind::Partial, Some(Bitmap::full(1)));
        let assigned = queue.assign(Instant::now());
        assert_eq!(assigned[0].source, partial);
        let dropped = queue.fail(assigned[0].request, peer_error("did not answer within 5s"));
        assert!(dropped, "one failure drops a partial source (it has most often left)");
        let later = Instant::now() + BUSY_BACKOFF;
        let again = queue.assign(later);
        assert_eq!(
            again.iter().map(|a| (a.source, a.offered.clone())).collect::<Vec<_>>(),
            [(seed, vec![0])]
        );
    }

    #[test]
    fn endgame_duplicates_blocks_in_flight_and_the_first_copy_wins() {
        let (fast, slow) = (peer(1), peer(2));
        let mut queue = queue(2, &[fast, slow], 1);
        let now = Instant::now();
        let assigned = queue.assign(now);
        assert_eq!(assigned.len(), 2, "two blocks shared out between two sources");
        assert!(assigned.iter().all(|a| a.offered.len() == 1));
        for assignment in &assigned {
            queue.picked(assignment.request, &assignment.offered);
        }
        let (done, stuck) = (&assigned[0], assigned[1].clone());
        queue.complete(done.request, &done.offered);
        // Nothing left to offer the idle source but a duplicate of what is in flight, and
        // only once that has run a while.
        assert!(queue.assign(now).is_empty(), "no duplicate of a fetch just started");
        let duplicate = queue.assign(now + ENDGAME_AFTER);
        assert_eq!(duplicate.len(), 1);
        assert_eq!(duplicate[0].offered, stuck.offered);
        queue.picked(duplicate[0].request, &stuck.offered);
        let completion = queue.complete(duplicate[0].request, &stuck.offered);
        assert_eq!(completion.first, stuck.offered);
        assert_eq!(completion.redundant, [(stuck.source, stuck.request)]);
        let source = &queue.sources[&stuck.source];
        assert!(
            source.requests.is_empty() && source.outstanding == 0,
            "a redundant request ends in the queue: its task is aborted and reports nothing"
        );
        assert!(queue.is_complete());
        assert!(
            queue.complete(stuck.request, &stuck.offered).first.is_empty(),
            "a duplicate counts nothing"
        );
    }

    #[test]
    fn a_source_with_nothing_new_for_us_duplicates_nothing_while_blocks_are_still_wanted() {
        let (seed, partial) = (peer(1), peer(2));
        let mut queue = queue(64, &[seed], 1);
        let now = Instant::now();
        let to_seed = queue.assign(now).remove(0);
        let picked = &to_seed.offered[..to_seed.want as usize];
        queue.picked(to_seed.request, picked);
        assert!(picked.len() < 64, "blocks are still wanted");
        // A partial source that holds only what the seed is sending now.
        queue.add_source(partial, SourceKind::Partial, None);
        queue.source_holds(partial, picked);
        let later = now + ENDGAME_AFTER * 4;
        assert!(
            queue.assign(later).iter().all(|a| a.source != partial),
            "no copy of a block in flight before every block is"
        );
    }

    #[test]
    fn a_block_delivered_by_a_duplicate_is_not_offered_again_while_the_slow_request_runs() {
        let (slow, fast) = (peer(1), peer(2));
        let mut queue = queue(2, &[slow], 1);
        let now = Instant::now();
        let first = queue.assign(now).remove(0);
        queue.picked(first.request, &[0, 1]);
        queue.add_source(fast, SourceKind::Seed, None);
        let later = now + ENDGAME_AFTER;
        let duplicate = queue.assign(later).remove(0);
        queue.picked(duplicate.request, &[0]);
        let completion = queue.complete(duplicate.request, &[0]);
        assert_eq!(completion.first, [0]);
        assert!(completion.redundant.is_empty(), "the slow request still brings block 1");
        let next = queue.assign(later);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].offered, [1], "only the block not yet delivered");
    }

    #[test]
    fn a_busy_source_waits_without_blame_and_its_blocks_go_to_others() {
        let (a, b) = (peer(1), peer(2));
        let mut queue = queue(64, &[a, b], 1);
        let now = Instant::now();
        let assigned = queue.assign(now);
        let busy = assigned.iter().find(|x| x.source == a).unwrap().clone();
        queue.busy(busy.request, now, "slots taken");
        assert_eq!(queue.sources[&a].consecutive_failures, 0);
        assert!(
            queue.assign(now).iter().all(|x| x.source == b),
            "a cools off; b is full"
        );
        let later = queue.assign(now + BUSY_BACKOFF);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].source, a);
        assert_eq!(later[0].offered, busy.offered, "its blocks were wanted again");
    }

    #[test]
    fn without_a_live_seed_the_download_fails_and_names_the_seeds() {
        let (seed, partial) = (peer(1), peer(2));
        let mut queue = queue(4, &[seed], 1);
        let mut holds = Bitmap::empty(4);
        holds.set(0);
        holds.set(1);
        queue.add_source(partial, SourceKind::Partial, Some(holds));
        let now = Instant::now();
        // The last seed of a swarm: dropped after its reprieves.
        for _ in 0..PEER_FAILURE_LIMIT * (1 + SEED_REPRIEVES) {
            let assigned = queue.assign(now);
            let mine = assigned.iter().find(|x| x.source == seed).cloned();
            let Some(mine) = mine else { break };
            queue.fail(mine.request, peer_error("gone"));
        }
        let reason = queue.take_failure().expect("no seed left").to_string();
        assert!(
            reason.contains("every peer failed") && reason.contains("gone"),
            "{reason}"
        );
    }

    #[test]
    fn a_local_error_fails_at_once_and_drops_no_source() {
        let (a, b) = (peer(1), peer(2));
        let mut queue = queue(64, &[a, b], 2);
        let assigned = queue.assign(Instant::now());
        assert_eq!(assigned.len(), 4);
        assert!(!queue.fail(assigned[0].request, disk_full()));
        assert!(queue.is_failed());
        assert!(queue.assign(Instant::now()).is_empty());
        assert!(!queue.fail(assigned[1].request, TransferError::Internal("second".into())));
        assert_eq!(queue.live_sources().count(), 2);
        assert!(queue.attempts.iter().all(|tries| *tries == 0), "no try of any block");
        assert!(matches!(queue.take_failure(), Some(TransferError::Local { .. })));
    }

    #[test]
    fn corrupt_data_drops_the_source_at_once_and_its_blocks_go_to_another() {
        let (a, b) = (peer(1), peer(2));
        let mut queue = queue(32, &[a, b], 1);
        let now = Instant::now();
        let assigned = queue.assign(now);
        let bad = assigned.iter().find(|x| x.source == a).unwrap().clone();
        queue.picked(bad.request, &bad.offered[..1]);
        let corrupt = TransferError::Corrupt {
            peer: a,
            path: "a.zip".into(),
        };
        assert!(queue.fail(bad.request, corrupt), "dropped on the first bad block");
        let good = assigned.iter().find(|x| x.source == b).unwrap().clone();
        queue.picked(good.request, &good.offered);
        queue.complete(good.request, &good.offered);
        let next = queue.assign(now);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].source, b);
        assert!(
            next[0].offered.contains(&bad.offered[0]),
            "the bad block is fetched again, from b"
        );
    }

    #[test]
    fn a_dropped_partial_no_longer_makes_blocks_common() {
        let (seed, partial) = (peer(1), peer(2));
        let mut queue = queue(4, &[seed], 1);
        let mut holds = Bitmap::empty(4);
        holds.set(0);
        queue.add_source(partial, SourceKind::Partial, Some(holds));
        assert_eq!(queue.rarity[0], 1);
        queue.drop_source(partial, "left".into());
        assert_eq!(queue.rarity[0], 0);
        assert_eq!(queue.partial_sources(), 0);
    }
}
