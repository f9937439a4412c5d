//! The swarm side of the server (see `peer::swarm`): `GetAvailability` and `GetBlocks`,
//! answered from a downloaded game (every block) or from a download running here (the
//! blocks it has verified), with upload slots and the seed's pick of least-sent blocks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::outgoing::Outgoing;
use super::{
    Sending, ServedLibrary, ServerContext, open_current_file, read_file, send_bytes, served_game, write_response,
};
use crate::beneath::open_file_beneath;
use crate::content::ContentHash;
use crate::peer::swarm::{Availability, BlockLayout, ServingDownload, list_digest};
use crate::proto::{ErrorKind, MAX_OFFERED_BLOCKS, MAX_PICKED_BLOCKS, MAX_PICKED_BYTES, Response};
use crate::untrusted::quote_untrusted;

/// A slot holder with nothing in flight for this long has left; its slot is free.
const SLOT_IDLE: Duration = Duration::from_secs(1);
/// A holder that has held its slot this long gives it up to a peer waiting for one, so a
/// downloader only this peer can serve is never starved.
const SLOT_TURN: Duration = Duration::from_secs(10);
/// How long a block answer's slot waits for the receiver to acknowledge its last bytes.
const DELIVERY_WAIT: Duration = Duration::from_secs(5);
/// Games (with their lists) whose sent counts are kept.
const COUNTED_GAMES: usize = 8;
/// Served games whose block layout is kept.
const CACHED_LAYOUTS: usize = 4;

/// At most `slots` downloaders fetch blocks from this peer at once (`--upload-slots`);
/// the rest are answered `Busy` and use other sources meanwhile.
pub struct UploadSlots {
    slots: usize,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    holders: HashMap<SocketAddr, Holder>,
    /// Peers refused a slot, and when they last asked.
    waiting: HashMap<SocketAddr, Instant>,
    /// Block answers being sent, to holders or to peers that have since given way.
    streams: usize,
}

struct Holder {
    since: Instant,
    /// When it last asked or an answer to it ended.
    last: Instant,
    streams: usize,
}

/// One block answer being sent: ends with its drop.
pub struct SlotStream<'a> {
    slots: &'a UploadSlots,
    peer: SocketAddr,
    /// The holding it was admitted under: a peer that gave way and took a slot again
    /// holds a new one, which this answer's end must not count down.
    since: Instant,
}

impl Drop for SlotStream<'_> {
    fn drop(&mut self) {
        let mut state = self.slots.lock();
        state.streams -= 1;
        if let Some(holder) = state.holders.get_mut(&self.peer)
            && holder.since == self.since
        {
            holder.streams -= 1;
            holder.last = holder.last.max(Instant::now());
        }
    }
}

impl UploadSlots {
    pub fn new(slots: usize) -> Self {
        UploadSlots {
            slots: slots.max(1),
            state: Mutex::default(),
        }
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Block answers being sent now.
    pub fn streams(&self) -> usize {
        self.lock().streams
    }

    /// Whether a peer other than `peer` holds a slot.
    pub fn serves_others(&self, peer: SocketAddr) -> bool {
        self.lock().holders.keys().any(|holder| *holder != peer)
    }

    /// Whether `peer` may be served now: if so, it takes or keeps a slot, and the answer
    /// counts as in flight until the returned guard drops.
    pub fn admit(&self, peer: SocketAddr, now: Instant) -> Option<SlotStream<'_>> {
        let mut state = self.lock();
        let SlotState {
            holders,
            waiting,
            streams,
        } = &mut *state;
        holders.retain(|_, holder| holder.streams > 0 || now.saturating_duration_since(holder.last) < SLOT_IDLE);
        waiting.retain(|_, last| now.saturating_duration_since(*last) < SLOT_IDLE);
        let others_wait = waiting.keys().any(|waiter| *waiter != peer);
        let held = holders.len();
        let since = match holders.get_mut(&peer) {
            Some(holder) if others_wait && now.saturating_duration_since(holder.since) >= SLOT_TURN => {
                // Its answers in flight still end; the slot is the waiter's.
                holders.remove(&peer);
                waiting.insert(peer, now);
                None
            }
            Some(holder) => {
                holder.last = now;
                holder.streams += 1;
                Some(holder.since)
            }
            None if held < self.slots => {
                let holder = Holder {
                    since: now,
                    last: now,
                    streams: 1,
                };
                holders.insert(peer, holder);
                waiting.remove(&peer);
                Some(now)
            }
            None => {
                waiting.insert(peer, now);
                None
            }
        }?;
        *streams += 1;
        Some(SlotStream {
            slots: self,
            peer,
            since,
        })
    }
}

/// How often this peer has sent each block of a game's list, and when last, for the pick.
#[derive(Default)]
pub struct SentCounts(Mutex<VecDeque<(GameList, Sent)>>);

/// A game id and the digest of one of its file lists.
type GameList = (String, ContentHash);

/// What left this peer of one list.
struct Sent {
    counts: Vec<u16>,
    last: Vec<Option<Instant>>,
}

/// How long a seed leaves a block it sent to spread before it sends it again: its receiver
/// serves it on at once (availability is a long poll), and the seed's uplink is worth more
/// spent on a block the swarm has fewer copies of (super-seeding, roughly). Also once
/// every block has left it: a downloader that knows only some of the partial sources
/// offers the seed blocks others hold (at 32 peers the seed sent 1.95 games without this
/// after its first pass, 1.63 with it).
pub const SPREAD_TIME: Duration = Duration::from_secs(2);

/// What the pick chose.
#[derive(Debug, PartialEq, Eq)]
pub struct Picked {
    /// In block order, which is file order on disk.
    pub blocks: Vec<u32>,
    /// Offered blocks held back because they left this seed moments ago.
    pub spreading: usize,
}

impl SentCounts {
    /// Picks, among the `offered` blocks this peer `holds`, those it has sent least (the
    /// downloader's order breaks ties), up to `want` and one answer's worth; counts them as
    /// sent. With `hold_back_recent` (a seed serving other downloaders too), a block sent
    /// less than [`SPREAD_TIME`] ago is held back. Not for a lone downloader: a block it asks
    /// again (its first request failed, or was aborted) has nobody else to come from.
    pub fn pick(
        &self,
        id: &str,
        layout: &BlockLayout,
        ask: &BlockAsk<'_>,
        hold_back_recent: bool,
        now: Instant,
        holds: impl Fn(u32) -> bool,
    ) -> Picked {
        let (list, offered) = (ask.list, ask.offered);
        let most = (ask.want as usize).clamp(1, MAX_PICKED_BLOCKS);
        let mut games = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (id.to_owned(), *list);
        let position = games.iter().position(|(known, _)| *known == key);
        let entry = match position {
            Some(position) => games.remove(position),
            None => None,
        };
        let total = layout.total() as usize;
        let (_, mut sent) = entry.unwrap_or_else(|| {
            let sent = Sent {
                counts: vec![0; total],
                last: vec![None; total],
            };
            (key.clone(), sent)
        });
        let mut seen = HashSet::new();
        let mut spreading = 0;
        let mut candidates: Vec<(u16, usize, u32)> = Vec::new();
        for (order, block) in offered.iter().enumerate() {
            let index = *block as usize;
            if index >= total || !seen.insert(*block) || !holds(*block) {
                continue;
            }
            let recent = sent.last[index].is_some_and(|at| now.saturating_duration_since(at) < SPREAD_TIME);
            if hold_back_recent && recent {
                spreading += 1;
                continue;
            }
            candidates.push((sent.counts[index], order, *block));
        }
        candidates.sort_unstable();
        let (mut picked, mut bytes) = (Vec::new(), 0);
        for (_, _, block) in candidates {
            let len = layout.block_len(block).unwrap_or(0);
            if picked.len() == most || bytes + len > MAX_PICKED_BYTES {
                break;
            }
            bytes += len;
            let index = block as usize;
            sent.counts[index] = sent.counts[index].saturating_add(1);
            sent.last[index] = Some(now);
            picked.push(block);
        }
        picked.sort_unstable();
        games.push_front((key, sent));
        games.truncate(COUNTED_GAMES);
        Picked {
            blocks: picked,
            spreading,
        }
    }
}

/// A served game's list, as of one library revision: its digest and layout.
struct CachedLayout {
    id: String,
    revision: u64,
    digest: ContentHash,
    layout: Arc<BlockLayout>,
}

/// The block layouts of served games, by id and library revision: a list of 100,000
/// files is not hashed again for every request.
#[derive(Default)]
pub struct LayoutCache(Mutex<VecDeque<CachedLayout>>);

impl LayoutCache {
    fn lock(&self) -> MutexGuard<'_, VecDeque<CachedLayout>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Where the blocks come from.
enum BlockSource {
    /// A downloaded game: every block, opened and checked against its record like any file.
    Served(Arc<BlockLayout>),
    /// A download running here: its verified blocks.
    Downloading(Arc<ServingDownload>),
}

impl BlockSource {
    fn layout(&self) -> &BlockLayout {
        match self {
            BlockSource::Served(layout) => layout,
            BlockSource::Downloading(download) => &download.layout,
        }
    }
}

/// The source of game `id`'s list `list` here, or the error to answer.
async fn block_source(
    context: &ServerContext,
    library: &ServedLibrary,
    id: &str,
    list: &ContentHash,
) -> Result<BlockSource, Response> {
    if let Some(download) = context.swarm.get(id, list) {
        return Ok(BlockSource::Downloading(download));
    }
    let game = served_game(context, library, id)?;
    let cached = context
        .layouts
        .lock()
        .iter()
        .find(|cached| cached.id == id && cached.revision == library.revision)
        .map(|cached| (cached.digest, cached.layout.clone()));
    let (digest, layout) = match cached {
        Some(cached) => cached,
        None => {
            let files = game.files.clone();
            let computed = tokio::task::spawn_blocking(move || (list_digest(&files), BlockLayout::new(&files)))
                .await
                .map_err(|err| Response::error(ErrorKind::Internal, format!("cutting the list failed: {err}")))?;
            let layout = Arc::new(
                computed
                    .1
                    .map_err(|err| Response::error(ErrorKind::Internal, err.to_string()))?,
            );
            let mut layouts = context.layouts.lock();
            layouts.push_front(CachedLayout {
                id: id.to_owned(),
                revision: library.revision,
                digest: computed.0,
                layout: layout.clone(),
            });
            layouts.truncate(CACHED_LAYOUTS);
            (computed.0, layout)
        }
    };
    if digest != *list {
        let message = format!("this peer has another file list of {id} (another version, or other content)");
        return Err(Response::error(ErrorKind::NotFound, message));
    }
    Ok(BlockSource::Served(layout))
}

/// Answers `GetAvailability`: an `Availability` header, then a bitmap or the blocks added.
pub(super) async fn send_availability(
    send: &mut Outgoing,
    context: &ServerContext,
    library: &ServedLibrary,
    id: &str,
    list: &ContentHash,
    since: u64,
    wait: Duration,
) -> std::io::Result<()> {
    let source = match block_source(context, library, id, list).await {
        Ok(source) => source,
        Err(response) => return write_response(send, &response).await,
    };
    if let BlockSource::Downloading(download) = &source
        && since > 0
    {
        // Nothing new yet: the answer waits for the next block (a long poll), so the
        // asker learns of it at once instead of at its next ask.
        download.added_beyond(since, wait).await;
    }
    let blocks = source.layout().total();
    let answer = match &source {
        BlockSource::Served(_) => Availability::Full,
        BlockSource::Downloading(download) => download.availability(since),
    };
    let header = |generation, full, bitmap, added| Response::Availability {
        blocks,
        generation,
        full,
        bitmap,
        added,
    };
    match answer {
        Availability::Full => write_response(send, &header(0, true, false, 0)).await,
        Availability::Bitmap { generation, bitmap } => {
            write_response(send, &header(generation, false, true, 0)).await?;
            send.write_all(bitmap.as_bytes()).await
        }
        Availability::Added { generation, blocks } => {
            write_response(send, &header(generation, false, false, blocks.len() as u32)).await?;
            let raw: Vec<u8> = blocks.iter().flat_map(|block| block.to_le_bytes()).collect();
            send.write_all(&raw).await
        }
    }
}

/// What a `GetBlocks` asks for.
pub struct BlockAsk<'a> {
    pub list: &'a ContentHash,
    pub offered: &'a [u32],
    pub want: u32,
}

/// Answers `GetBlocks`: a slot, the pick, a `Blocks` header, then each picked block's bytes.
pub(super) async fn send_blocks(
    send: &mut Outgoing,
    context: &ServerContext,
    library: &ServedLibrary,
    remote: SocketAddr,
    id: &str,
    ask: BlockAsk<'_>,
) -> std::io::Result<()> {
    let (list, offered) = (ask.list, ask.offered);
    if offered.is_empty() || offered.len() > MAX_OFFERED_BLOCKS {
        let message = format!("offered {} blocks; 1 to {MAX_OFFERED_BLOCKS} may be", offered.len());
        return write_response(send, &Response::error(ErrorKind::BadRequest, message)).await;
    }
    let source = match block_source(context, library, id, list).await {
        Ok(source) => source,
        Err(response) => return write_response(send, &response).await,
    };
    let Some(_stream) = context.slots.admit(remote, Instant::now()) else {
        let message = format!(
            "this peer is sending to {} peers, its most at once; ask another peer",
            context.slots.slots()
        );
        return write_response(send, &Response::error(ErrorKind::Busy, message)).await;
    };
    let layout = source.layout();
    let now = Instant::now();
    let Picked {
        blocks: picked,
        spreading,
    } = match &source {
        BlockSource::Served(_) => {
            let hold_back_recent = context.slots.serves_others(remote);
            context.sent.pick(id, layout, &ask, hold_back_recent, now, |_| true)
        }
        BlockSource::Downloading(download) => context.sent.pick(id, layout, &ask, false, now, |b| download.has(b)),
    };
    if picked.is_empty() && spreading > 0 {
        let message = format!(
            "the offered blocks of {id} left this peer moments ago and are spreading; ask the peers that have them"
        );
        return write_response(send, &Response::error(ErrorKind::Busy, message)).await;
    }
    if picked.is_empty() {
        let message = format!("this peer holds none of the offered blocks of {id} yet");
        return write_response(send, &Response::error(ErrorKind::NotFound, message)).await;
    }
    write_response(send, &Response::Blocks { picked: picked.clone() }).await?;
    // Consecutive blocks of one file are read from one handle.
    let mut open: Option<(usize, std::fs::File)> = None;
    for block in picked {
        let Some(at) = layout.locate(block) else {
            return Err(std::io::Error::other("a picked block left the layout"));
        };
        let file = match open.take() {
            Some((file, handle)) if file == at.file.file => handle,
            _ => open_block_file(context, library, &source, id, &at.file.path).await?,
        };
        let sending = match source {
            BlockSource::Served(_) => Sending::Served(id),
            BlockSource::Downloading(_) => Sending::Downloading(id),
        };
        let reader = file.try_clone()?;
        send_bytes(send, context, sending, &at.file.path, reader, at.offset, at.len).await?;
        open = Some((at.file.file, file));
    }
    // The slot is taken until the answer has arrived, not merely been queued: else a slow
    // link's queued answers free the slots, more holders come, and every block crawls.
    send.finish_delivered(DELIVERY_WAIT).await;
    Ok(())
}

/// Opens the file a picked block is in. The pick is already announced, so a failure here
/// breaks the stream (the downloader fetches those blocks elsewhere).
async fn open_block_file(
    context: &ServerContext,
    library: &ServedLibrary,
    source: &BlockSource,
    id: &str,
    path: &str,
) -> std::io::Result<std::fs::File> {
    match source {
        BlockSource::Served(_) => match open_current_file(context, library, id, path, false).await {
            Ok((file, _, _)) => Ok(file),
            Err(response) => Err(std::io::Error::other(format!("cannot serve {path}: {response:?}"))),
        },
        BlockSource::Downloading(download) => {
            let (game_dir, relative) = (download.game_dir.clone(), format!("{id}/{path}"));
            let opened = read_file(context, move || open_file_beneath(&game_dir, &relative)).await?;
            opened
                .map(|opened| opened.file)
                .map_err(|err| std::io::Error::other(format!("cannot open {}: {err}", quote_untrusted(path))))
        }
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

    #[test]
    fn slots_admit_k_peers_then_refuse_until_one_leaves() {
        let slots = UploadSlots::new(2);
        let start = Instant::now();
        assert!(slots.admit(peer(1), start).is_some());
        let sending = slots.admit(peer(2), start);
        assert!(sending.is_some());
        assert!(slots.admit(peer(3), start).is_none(), "a third peer waits");
        assert_eq!(slots.streams(), 1, "peer 2's answer is being sent");
        let later = start + SLOT_IDLE + Duration::from_secs(1);
        assert!(
            slots.admit(peer(3), later).is_some(),
            "idle peer 1's slot went to the waiter"
        );
        assert!(
            slots.admit(peer(4), later).is_none(),
            "peer 2, whose answer is still being sent, keeps its slot however long it takes"
        );
        drop(sending);
        assert_eq!(slots.streams(), 0);
        let after = later + SLOT_IDLE / 2;
        assert!(slots.admit(peer(4), after).is_some(), "peer 2 left: its slot is free");
        assert!(
            slots.admit(peer(1), after).is_none(),
            "the one that left first waits now"
        );
    }

    #[test]
    fn a_holder_gives_way_after_its_turn_so_a_waiter_is_not_starved() {
        let slots = UploadSlots::new(1);
        let start = Instant::now();
        assert!(slots.admit(peer(1), start).is_some());
        let mut now = start;
        while now < start + SLOT_TURN {
            assert!(
                slots.admit(peer(1), now).is_some(),
                "the holder is served through its turn"
            );
            assert!(slots.admit(peer(2), now).is_none(), "the waiter is refused meanwhile");
            now += Duration::from_millis(500);
        }
        assert!(
            slots.admit(peer(1), now).is_none(),
            "after its turn the holder yields to the waiter"
        );
        assert!(slots.admit(peer(2), now).is_some(), "so the waiter is served");
        assert!(slots.admit(peer(1), now).is_none(), "and the old holder waits its turn");
    }

    #[test]
    fn an_answer_from_before_a_holder_gave_way_does_not_count_down_its_new_slot() {
        let slots = UploadSlots::new(1);
        let start = Instant::now();
        let old_answer = slots.admit(peer(1), start);
        assert!(old_answer.is_some());
        assert!(slots.admit(peer(2), start + SLOT_TURN).is_none(), "peer 2 waits");
        assert!(slots.admit(peer(1), start + SLOT_TURN).is_none(), "peer 1 gives way");
        let turn = start + SLOT_TURN + SLOT_IDLE + SLOT_IDLE;
        assert!(
            slots.admit(peer(1), turn).is_some(),
            "peer 2 stopped asking: peer 1 holds again"
        );
        let new_answer = slots.admit(peer(1), turn);
        drop(old_answer);
        assert_eq!(slots.streams(), 1);
        assert!(
            slots.admit(peer(3), turn + SLOT_IDLE + SLOT_IDLE).is_none(),
            "peer 1's new answer is still being sent: it keeps its slot"
        );
        drop(new_answer);
        assert_eq!(slots.streams(), 0);
    }

    #[test]
    fn the_pick_takes_least_sent_blocks_it_holds_and_counts_them() {
        let files = [GameFileDescription {
            path: "a".into(),
            size: 20 * BLOCK_SIZE,
            is_dir: false,
            hash: None,
        }];
        let layout = BlockLayout::new(&files).unwrap();
        let list = ContentHash::of(b"l");
        let sent = SentCounts::default();
        let offered: Vec<u32> = (0..16).collect();
        let ask = |offered, want| BlockAsk {
            list: &list,
            offered,
            want,
        };
        let now = Instant::now();
        let pick = |offered, want, holds: &dyn Fn(u32) -> bool| {
            sent.pick("g", &layout, &ask(offered, want), false, now, holds).blocks
        };
        let first = pick(&offered, 128, &|_| true);
        assert_eq!(
            first,
            (0..8).collect::<Vec<_>>(),
            "8 MiB of the offered, in the offered order"
        );
        let second = pick(&offered, 128, &|_| true);
        assert_eq!(
            second,
            (8..16).collect::<Vec<_>>(),
            "the same offer gets the blocks not sent yet"
        );
        let held = pick(&[17, 18, 19, 99, 18], 128, &|block| block != 18);
        assert_eq!(held, [17, 19], "only held blocks in the layout, each once");
        let few = pick(&offered, 2, &|_| true);
        assert_eq!(few.len(), 2, "at most what was wanted");
    }

    #[test]
    fn a_lone_holder_is_the_only_one_served_and_a_second_makes_two() {
        let slots = UploadSlots::new(4);
        let now = Instant::now();
        let (a, b) = (peer(1), peer(2));
        let first = slots.admit(a, now).unwrap();
        assert!(
            !slots.serves_others(a),
            "a lone downloader: a block it asks again is its own"
        );
        assert!(slots.serves_others(b));
        let second = slots.admit(b, now).unwrap();
        assert!(slots.serves_others(a) && slots.serves_others(b));
        drop((first, second));
    }

    #[test]
    fn a_seed_lets_a_block_it_just_sent_spread_before_it_sends_it_again() {
        let files = [GameFileDescription {
            path: "a".into(),
            size: 4 * BLOCK_SIZE,
            is_dir: false,
            hash: None,
        }];
        let layout = BlockLayout::new(&files).unwrap();
        let list = ContentHash::of(b"l");
        let sent = SentCounts::default();
        let start = Instant::now();
        let pick = |offered: &[u32], at: Duration| {
            let ask = BlockAsk {
                list: &list,
                offered,
                want: 1,
            };
            sent.pick("g", &layout, &ask, true, start + at, |_| true)
        };
        assert_eq!(pick(&[0], Duration::ZERO).blocks, [0]);
        // Block 0 just left for one downloader; another offering only it is sent elsewhere.
        let held = pick(&[0], Duration::from_millis(500));
        assert_eq!((held.blocks.len(), held.spreading), (0, 1));
        // Offered beside a block not sent yet, the new block goes.
        assert_eq!(pick(&[0, 1], Duration::from_millis(600)).blocks, [1]);
        // Once it had time to spread, it may leave again.
        assert_eq!(pick(&[0], SPREAD_TIME + Duration::from_millis(100)).blocks, [0]);
        // Once every block has left, a block sent moments ago is still held back, and goes
        // once it had time to spread (an endgame duplicate asks after 4 s).
        assert_eq!(pick(&[2], SPREAD_TIME).blocks, [2]);
        assert_eq!(pick(&[3], SPREAD_TIME).blocks, [3]);
        assert_eq!(pick(&[3], SPREAD_TIME + Duration::from_millis(1)).spreading, 1);
        assert_eq!(pick(&[3], SPREAD_TIME * 2 + Duration::from_millis(1)).blocks, [3]);
        // A partial source never holds back: it has only what it has.
        let ask = BlockAsk {
            list: &list,
            offered: &[1],
            want: 1,
        };
        let other = SentCounts::default();
        assert_eq!(other.pick("g", &layout, &ask, false, start, |_| true).blocks, [1]);
        assert_eq!(other.pick("g", &layout, &ask, false, start, |_| true).blocks, [1]);
    }
}
