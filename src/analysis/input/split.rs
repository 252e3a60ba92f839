//! Reading a streamed JSON dump with both cores: the `items` of each top-level List are
//! cut out of the stream by a structural splitter and decoded in parallel by serde_json,
//! everything else goes through the sequential reader of the parent module.
//!
//! # Why
//! serde_json's stream reader (`IoRead`) takes its input one byte at a time and copies
//! every string into a scratch buffer; its slice reader scans and borrows. On a
//! `kubectl get -o json` dump streaming cost ≈0.45× a plain parse on top of the ≈0.5× of
//! the slice reader (BENCHMARKS.md, "Analysis"). A List's items are independent objects,
//! so once their byte ranges are known they can be read from slices, on every core.
//!
//! # How
//! A [`ValueEnd`] scanner finds where a JSON value ends: it tracks nesting depth and
//! whether it is inside a string (and after a backslash there), and nothing else, so it
//! never validates; serde_json does that when it decodes the bytes. The stream is read
//! into a window of a few MiB; complete items are shipped in batches of about
//! [`BATCH`] bytes to worker threads, each decoding its batch into its own
//! [`AnalysisInput`] (through serde_json's `str` reader after one UTF-8 check of the
//! batch, else its slice reader) and settling it there: quantities checked, labels and
//! annotations redacted ([`AnalysisInput::settle`]). The batches are merged back in
//! document order, so the result is the sequential reader's; what the reading thread
//! reads itself (documents that are no List) it settles as it merges. At most
//! [`IN_FLIGHT`] batches per worker are read ahead: memory stays bounded by the window
//! and the batches in flight, whatever the dump's size.
//!
//! # Same result, same errors
//! Only a top-level object whose `items` array comes while its `kind` still allows items
//! (no kind yet, or a List) takes the parallel path; any other document is read from its
//! buffered bytes by the parent's visitor, and anything the splitter does not expect
//! before that point (not an object, bad syntax) hands the rest of the stream to the
//! sequential reader unchanged. An error is always produced by serde_json reading the
//! same bytes the sequential reader would have read, at the same line and column: the
//! failing item (or the document's remaining parts) is read again behind whitespace
//! that puts it where it was in the dump (see [`Pieces`]), after every earlier item was
//! merged, so the first error in document order wins as it does sequentially. Known
//! exceptions (found by trying to break it; documented on `from_reader`): a comma after
//! the last item, which the splitter takes for a missing item (`expected value` instead
//! of `trailing comma`), and serde_json's nesting limit, which counts from each item.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Mutex, mpsc};

use serde::de::{DeserializeSeed, IgnoredAny};

use super::{
    AnalysisInput, BadQuantities, Injected, InputError, Kind, ObjectSeed, Said, Settled, Sink,
    TopSeed, Unresolved, Verdicts, read_json_into,
};
use crate::sanitize::Sanitizer;

/// Bytes read from the stream at a time.
const CHUNK: usize = 1 << 20;
/// Items are shipped to the workers in batches of about this many bytes: large enough to
/// make the hand-over cheap, small enough that a few in flight are little memory.
const BATCH: usize = if cfg!(test) { 64 << 10 } else { 4 << 20 };
/// Batches per worker decoded or waiting before the splitter waits for the oldest.
const IN_FLIGHT: usize = 2;

/// Where a byte is, in the terms serde_json reports: newlines before it, and bytes since
/// the last one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Pos {
    lines: u64,
    col: u64,
}

impl Pos {
    /// The position `n` bytes further on the same line.
    fn plus(self, n: u64) -> Pos {
        Pos {
            lines: self.lines,
            col: self.col + n,
        }
    }
}

/// Finds the end of one JSON value whose first byte is `{`, `[` or `"`, across as many
/// calls as its bytes take to arrive. Tracks only depth, strings and escapes: it never
/// validates (brackets of either kind count alike), serde_json does when it decodes.
///
/// Inside a value it reads 64 bytes at a time ([`Block`]): bit masks of the quotes, the
/// backslashes and the brackets of the block; a running XOR of the quote mask says which
/// bytes lie inside a string, so the brackets outside strings are known without a branch
/// per byte, and the depth is counted from their masks. Read one byte at a time, by the
/// same rule: a block with a backslash in it (escaped JSON in an annotation, say), every
/// byte while the depth is 0 (the value's first byte; all of a value that is a string,
/// such as a key), and the last bytes of the input (fewer than 64).
#[derive(Debug, Default)]
pub(super) struct ValueEnd {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

/// The bytes of a 64-byte block that matter to [`ValueEnd`], one bit per byte (bit `k`
/// for byte `k`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Block {
    quotes: u64,
    backslashes: u64,
    /// `{` and `[`.
    opens: u64,
    /// `}` and `]`.
    closes: u64,
}

impl Block {
    /// The masks of `bytes`, 16 bytes per SSE2 compare (SSE2 is part of every x86_64
    /// target).
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    fn of(bytes: &[u8; 64]) -> Block {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        let mut block = Block::default();
        // SAFETY: SSE2 is enabled on every x86_64 target, and each load reads 16 bytes
        // that lie within `bytes` (an unaligned load, so any address is fine).
        unsafe {
            let [quote, backslash, open, close, case] =
                [b'"', b'\\', b'{', b'}', 0x20].map(|b| _mm_set1_epi8(b as i8));
            for part in 0..4 {
                let v = _mm_loadu_si128(bytes.as_ptr().add(16 * part).cast());
                // `[` and `]` are `{` and `}` without the 0x20 bit; no other byte maps to them.
                let folded = _mm_or_si128(v, case);
                let bits = |m| u64::from(_mm_movemask_epi8(m) as u16) << (16 * part);
                block.quotes |= bits(_mm_cmpeq_epi8(v, quote));
                block.backslashes |= bits(_mm_cmpeq_epi8(v, backslash));
                block.opens |= bits(_mm_cmpeq_epi8(folded, open));
                block.closes |= bits(_mm_cmpeq_epi8(folded, close));
            }
        }
        block
    }

    /// The masks of `bytes`, a byte at a time (other targets; and the reference the SSE2
    /// version is tested against).
    #[cfg_attr(
        all(target_arch = "x86_64", target_feature = "sse2"),
        cfg_attr(not(test), allow(dead_code))
    )]
    fn of_bytes(bytes: &[u8; 64]) -> Block {
        let mut block = Block::default();
        for (k, &b) in bytes.iter().enumerate() {
            let bit = 1u64 << k;
            match b {
                b'"' => block.quotes |= bit,
                b'\\' => block.backslashes |= bit,
                b'{' | b'[' => block.opens |= bit,
                b'}' | b']' => block.closes |= bit,
                _ => {}
            }
        }
        block
    }

    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    fn of(bytes: &[u8; 64]) -> Block {
        Block::of_bytes(bytes)
    }
}

/// Bit `k` of the result is the XOR of bits `0..=k` of `x`.
fn prefix_xor(mut x: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        x ^= x << shift;
    }
    x
}

impl ValueEnd {
    /// Scan the next bytes of the value (the first call starts at its first byte).
    /// `Some(n)`: the value ends after the first `n` bytes of `bytes`; `None`: it goes on.
    pub(super) fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut i = 0;
        loop {
            while self.depth > 0 && !self.escaped {
                let Some(chunk) = bytes.get(i..i + 64) else {
                    break;
                };
                let block = Block::of(chunk.try_into().expect("64 bytes"));
                if block.backslashes != 0 {
                    break;
                }
                // Bit k set: byte k is inside a string (an opening quote counts as inside,
                // a closing one as outside; brackets are never quotes, so either is fine).
                let carry = if self.in_string { !0 } else { 0 };
                let inside = prefix_xor(block.quotes) ^ carry;
                let opens = block.opens & !inside;
                let closes = block.closes & !inside;
                if (closes.count_ones() as usize) < self.depth {
                    // Not enough closing brackets to end the value in this block.
                    self.depth =
                        self.depth + opens.count_ones() as usize - closes.count_ones() as usize;
                } else {
                    let mut brackets = opens | closes;
                    while brackets != 0 {
                        let k = brackets.trailing_zeros();
                        if opens >> k & 1 == 1 {
                            self.depth += 1;
                        } else {
                            self.depth -= 1;
                            if self.depth == 0 {
                                return Some(i + k as usize + 1);
                            }
                        }
                        brackets &= brackets - 1;
                    }
                }
                self.in_string = inside >> 63 == 1;
                i += 64;
            }
            // A byte at a time up to the next block (or the end of the input).
            if i >= bytes.len() {
                return None;
            }
            let stop = if self.depth == 0 {
                i + 1
            } else {
                (i + 64).min(bytes.len())
            };
            while i < stop {
                if self.byte(bytes[i]) {
                    return Some(i + 1);
                }
                i += 1;
            }
        }
    }

    /// Take the next byte; `true` when the value ends with it.
    fn byte(&mut self, b: u8) -> bool {
        if self.escaped {
            self.escaped = false;
        } else if self.in_string {
            if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
                return self.depth == 0;
            }
        } else {
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    return self.depth == 0;
                }
                _ => {}
            }
        }
        false
    }
}

/// A reader over pieces of bytes and runs of one byte: a document's parts behind the
/// whitespace that puts them at their place in the dump, read again to report an error
/// exactly as the sequential reader would (it costs a pass over the whitespace, only on
/// the error path, and no memory for it).
struct Pieces(std::collections::VecDeque<Piece>);

enum Piece {
    Bytes(Vec<u8>, usize),
    Run(u8, u64),
}

impl Pieces {
    /// Whitespace that brings a reader at `from` to `to` (`to` not before `from`).
    fn gap(&mut self, from: Pos, to: Pos) {
        if to.lines > from.lines {
            self.0.push_back(Piece::Run(b'\n', to.lines - from.lines));
            self.0.push_back(Piece::Run(b' ', to.col));
        } else {
            self.0
                .push_back(Piece::Run(b' ', to.col.saturating_sub(from.col)));
        }
    }

    fn push_bytes(&mut self, b: &[u8]) {
        self.0.push_back(Piece::Bytes(b.to_vec(), 0));
    }
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(front) = self.0.front_mut() {
            let n = match front {
                Piece::Bytes(b, at) => {
                    let n = (b.len() - *at).min(buf.len());
                    buf[..n].copy_from_slice(&b[*at..*at + n]);
                    *at += n;
                    n
                }
                Piece::Run(byte, left) => {
                    let n = (*left).min(buf.len() as u64) as usize;
                    buf[..n].fill(*byte);
                    *left -= n as u64;
                    n
                }
            };
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.0.pop_front();
        }
        Ok(0)
    }
}

/// The stream as a window of bytes: `buf[..end]` holds bytes from absolute offset `base`.
struct Window<R> {
    reader: R,
    buf: Vec<u8>,
    end: usize,
    eof: bool,
    /// Newlines are counted up to `buf[counted]`, which is at position `at`.
    counted: usize,
    at: Pos,
    /// Buffers of merged batches, for the next batches.
    spare: Vec<Vec<u8>>,
}

impl<R: Read> Window<R> {
    /// Read more bytes; `false` at the end of the stream.
    fn fill(&mut self) -> Result<bool, InputError> {
        if self.eof {
            return Ok(false);
        }
        if self.buf.len() - self.end < CHUNK / 2 {
            let size = (self.buf.len() * 2).max(self.end + CHUNK);
            self.buf.resize(size, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(InputError::Read { source }),
            }
        }
    }

    /// The byte at `i`, reading as needed; `None` at the end of the stream.
    fn byte(&mut self, i: usize) -> Result<Option<u8>, InputError> {
        while i >= self.end {
            if !self.fill()? {
                return Ok(None);
            }
        }
        Ok(Some(self.buf[i]))
    }

    /// The first byte at or after `i` that is not JSON whitespace, and where it is.
    fn skip_ws(&mut self, mut i: usize) -> Result<(usize, Option<u8>), InputError> {
        loop {
            match self.byte(i)? {
                Some(b' ' | b'\n' | b'\r' | b'\t') => i += 1,
                other => return Ok((i, other)),
            }
        }
    }

    /// Where the value starting at `i` (with `{`, `[` or `"`) ends; `None` if the stream
    /// ends first.
    fn value_end(&mut self, i: usize) -> Result<Option<usize>, InputError> {
        let mut scan = ValueEnd::default();
        let mut from = i;
        loop {
            if from < self.end
                && let Some(n) = scan.scan(&self.buf[from..self.end])
            {
                return Ok(Some(from + n));
            }
            from = self.end;
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Where a scalar starting at `i` ends (the first delimiter after it, or the end).
    fn scalar_end(&mut self, mut i: usize) -> Result<usize, InputError> {
        loop {
            match self.byte(i)? {
                None | Some(b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t') => return Ok(i),
                Some(_) => i += 1,
            }
        }
    }

    /// The position of `buf[i]` (`i` not before any position asked for earlier).
    fn pos(&mut self, i: usize) -> Pos {
        let part = &self.buf[self.counted..i];
        match memchr::memrchr(b'\n', part) {
            Some(last) => {
                self.at = Pos {
                    lines: self.at.lines + memchr::memchr_iter(b'\n', part).count() as u64,
                    col: (part.len() - last - 1) as u64,
                };
            }
            None => self.at.col += part.len() as u64,
        }
        self.counted = i;
        self.at
    }

    /// Hand over `buf[..upto]` (for a batch) and keep the rest; indices into the window
    /// shift down by `upto`.
    fn split_off(&mut self, upto: usize) -> Vec<u8> {
        self.pos(upto);
        // A buffer a merged batch gave back, if any: the same few buffers go round instead
        // of a fresh allocation per batch, which would leave the heap fragmented between
        // the objects kept.
        // Its old bytes are left in place, not zeroed again: only `..end` is ever read,
        // and everything there is written first (the copy below, then `fill`).
        let mut rest = self.spare.pop().unwrap_or_default();
        rest.resize((self.end - upto + CHUNK).max(BATCH + CHUNK), 0);
        rest[..self.end - upto].copy_from_slice(&self.buf[upto..self.end]);
        let mut batch = std::mem::replace(&mut self.buf, rest);
        batch.truncate(upto);
        self.end -= upto;
        self.counted = 0;
        batch
    }

    /// Drop `buf[..upto]` (read and done with).
    fn discard(&mut self, upto: usize) {
        self.pos(upto);
        self.buf.copy_within(upto..self.end, 0);
        self.end -= upto;
        self.counted = 0;
    }

    /// Everything not yet in the window as a reader: the stream itself.
    fn into_rest(self) -> (Vec<u8>, R) {
        let mut buf = self.buf;
        buf.truncate(self.end);
        (buf, self.reader)
    }
}

/// Items shipped to a worker: their bytes, and each item's range and position.
struct Batch {
    bytes: Vec<u8>,
    items: Vec<(std::ops::Range<usize>, Pos)>,
    hint: Option<Kind>,
}

/// A batch decoded: its objects (settled: checked and redacted), and where decoding
/// stopped if it failed.
struct Decoded {
    batch: Batch,
    out: AnalysisInput,
    /// The batch's first bad node and pod quantities.
    bad: BadQuantities,
    /// Items without a kind, by object index within the batch.
    orphans: Vec<Unresolved>,
    /// Objects the batch held.
    objects: usize,
    /// The item that failed to decode, and the objects before it in the batch.
    failed: Option<(usize, usize)>,
}

/// Decode a batch's items, then check and redact them (judging label values with the
/// worker's `verdicts`, which last from batch to batch).
fn decode(batch: Batch, sanitizer: &Sanitizer, verdicts: &mut Verdicts) -> Decoded {
    let mut out = AnalysisInput::default();
    let mut orphans = Vec::new();
    let mut objects = 0;
    let mut failed = None;
    // One UTF-8 check of the whole batch lets serde_json's `str` reader take the items
    // without checking each string it returns again (≈7% of a read's CPU time otherwise).
    // A batch that is not UTF-8 throughout is read from bytes, as the sequential reader
    // reads it, and so fails or passes alike.
    let text = std::str::from_utf8(&batch.bytes).ok();
    for (i, (range, _)) in batch.items.iter().enumerate() {
        let mut sink = Sink::new(&mut out);
        sink.objects = objects;
        let seed = ObjectSeed {
            sink: &mut sink,
            hint: batch.hint,
            injected: None,
        };
        // Items start with `{` and end with `}` or `]` (ASCII): their ranges are
        // character boundaries.
        let read = match text.and_then(|t| t.get(range.clone())) {
            Some(item) => seed.deserialize(&mut serde_json::Deserializer::from_str(item)),
            None => seed.deserialize(&mut serde_json::Deserializer::from_slice(
                &batch.bytes[range.clone()],
            )),
        };
        match read {
            Ok(orphan) => orphans.extend(orphan),
            Err(_) => {
                failed = Some((i, objects));
                break;
            }
        }
        objects = sink.objects;
    }
    let mut bad = BadQuantities::default();
    out.settle(Settled::default(), sanitizer, verdicts, &mut bad);
    Decoded {
        batch,
        out,
        bad,
        orphans,
        objects,
        failed,
    }
}

/// Read a JSON document or stream of documents as [`super::read_json`] does, from a
/// stream whose leading whitespace `lead` was already read from it, and settle it as
/// [`AnalysisInput::settle_all`] does: the items of Lists on the workers, batch by
/// batch, everything else on this thread as it is merged.
pub(super) fn read_json_stream(
    reader: impl Read,
    lead: &[u8],
    sanitizer: &Sanitizer,
) -> Result<AnalysisInput, InputError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Batch)>(workers);
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Decoded)>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let work_rx = &work_rx;
            scope.spawn(move || {
                let mut verdicts = Verdicts::new();
                loop {
                    // The lock is held only while waiting for the next batch.
                    let job = work_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((seq, batch))) = job else { return };
                    let decoded = decode(batch, sanitizer, &mut verdicts);
                    if done_tx.send((seq, decoded)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut window = Window {
            reader,
            buf: vec![0; lead.len() + CHUNK],
            end: lead.len(),
            eof: false,
            counted: 0,
            at: Pos::default(),
            spare: Vec::new(),
        };
        window.buf[..lead.len()].copy_from_slice(lead);
        let mut reading = Reading {
            window,
            work_tx: Some(work_tx),
            done_rx,
            limit: workers * IN_FLIGHT,
            sent: 0,
            merged: 0,
            decoded: BTreeMap::new(),
            out: AnalysisInput::default(),
            sanitizer,
            settled: Settled::default(),
            verdicts: Verdicts::new(),
            bad: BadQuantities::default(),
        };
        let handoff = reading.documents();
        // Let the workers go (they finish the batch in hand, if any).
        reading.work_tx = None;
        match handoff? {
            None => reading.finish(),
            Some((from, index)) => {
                let Reading {
                    mut window,
                    mut out,
                    settled,
                    mut verdicts,
                    mut bad,
                    ..
                } = reading;
                // The rest of the stream through the sequential reader, placed where it
                // is in the stream.
                let pos = window.pos(from);
                let (buf, reader) = window.into_rest();
                let mut lead = Pieces(Default::default());
                lead.gap(Pos::default(), pos);
                lead.push_bytes(&buf[from..]);
                let stream = std::io::BufReader::new(lead.chain(reader));
                read_json_into(
                    serde_json::Deserializer::from_reader(stream),
                    index,
                    &mut out,
                )?;
                out.settle(settled, sanitizer, &mut verdicts, &mut bad);
                bad.into_result().map(|()| out)
            }
        }
    })
}

/// The state of one streamed read.
struct Reading<'s, R> {
    window: Window<R>,
    work_tx: Option<mpsc::SyncSender<(usize, Batch)>>,
    done_rx: mpsc::Receiver<(usize, Decoded)>,
    /// Batches that may be in flight at once.
    limit: usize,
    sent: usize,
    merged: usize,
    /// Decoded batches that came back before an earlier one.
    decoded: BTreeMap<usize, Decoded>,
    out: AnalysisInput,
    sanitizer: &'s Sanitizer,
    /// How much of `out` is settled; objects after it were read on this thread.
    settled: Settled,
    /// Label values judged on this thread.
    verdicts: Verdicts,
    /// The first bad node and pod quantities merged so far.
    bad: BadQuantities,
}

/// What a top-level object was, as far as the splitter read it.
enum Doc {
    /// Read in full, parallel or not; the next document starts at this window index.
    Done(usize),
    /// Something the splitter does not take: the sequential reader takes over at the
    /// object's start.
    Sequential,
}

/// Where the reader stands in a List's items.
#[derive(Clone, Copy, PartialEq, Eq)]
enum After {
    Open,
    Comma,
    Item,
}

/// Where the items of a List being read stand, for the merge and for an error.
struct Items {
    index: usize,
    /// Object index of the next batch's first object.
    objects: usize,
    orphans: Vec<Unresolved>,
    /// The document's bytes up to its `items` array.
    head: Vec<u8>,
    start: Pos,
    /// Position just after the `[`.
    open: Pos,
    /// The last item read: where it starts and ends.
    last: Option<(Pos, Pos)>,
    /// Window index of the bytes after the last item (or after the `[`).
    tail: usize,
    /// Where the items go.
    hint: Option<Kind>,
}

impl<R: Read> Reading<'_, R> {
    /// Settle what this thread read since the last batch was merged.
    fn settle(&mut self) {
        self.settled = self.out.settle(
            self.settled,
            self.sanitizer,
            &mut self.verdicts,
            &mut self.bad,
        );
    }

    /// The whole read, settled; its first bad quantity is the error.
    fn finish(mut self) -> Result<AnalysisInput, InputError> {
        self.settle();
        self.bad.into_result().map(|()| self.out)
    }

    /// Every document of the stream; `Some((from, index))` when the sequential reader
    /// must read the rest, from window index `from`, which is document `index`.
    fn documents(&mut self) -> Result<Option<(usize, usize)>, InputError> {
        let mut index = 0;
        let mut at = 0;
        loop {
            let (start, first) = self.window.skip_ws(at)?;
            match first {
                None => return Ok(None),
                Some(b'{') => {}
                Some(_) => return Ok(Some((start, index))),
            }
            self.window.discard(start);
            match self.object(index)? {
                Doc::Done(next) => at = next,
                Doc::Sequential => return Ok(Some((0, index))),
            }
            index += 1;
        }
    }

    /// The top-level object at the window's start (its `{`), document `index`.
    fn object(&mut self, index: usize) -> Result<Doc, InputError> {
        let w = &mut self.window;
        let mut said = Said::Nothing;
        let mut i = 1;
        let mut first = true;
        loop {
            let (k, b) = w.skip_ws(i)?;
            match b {
                Some(b'}') if first => return Ok(self.whole(k + 1)),
                Some(b'"') => {}
                _ => return Ok(Doc::Sequential),
            }
            first = false;
            let Some(key_end) = w.value_end(k)? else {
                return Ok(Doc::Sequential);
            };
            let Ok(key) = serde_json::from_slice::<String>(&w.buf[k..key_end]) else {
                return Ok(Doc::Sequential);
            };
            let (c, b) = w.skip_ws(key_end)?;
            if b != Some(b':') {
                return Ok(Doc::Sequential);
            }
            let (v, b) = w.skip_ws(c + 1)?;
            let Some(b) = b else {
                return Ok(Doc::Sequential);
            };
            if key == "items" && b == b'[' && matches!(said, Said::Nothing | Said::List(_)) {
                // The parts before the items must read as the sequential reader reads
                // them; if not, it reads them (and reports what is wrong).
                let mut head = w.buf[..v].to_vec();
                head.extend_from_slice(b"[]}");
                if serde_json::from_slice::<IgnoredAny>(&head).is_err() {
                    return Ok(Doc::Sequential);
                }
                head.truncate(v);
                let hint = match &said {
                    Said::List(Some(item)) => Kind::of(item),
                    _ => None,
                };
                return self.list(index, head, v, hint).map(Doc::Done);
            }
            let end = match b {
                b'{' | b'[' | b'"' => match w.value_end(v)? {
                    Some(end) => end,
                    None => return Ok(Doc::Sequential),
                },
                _ => w.scalar_end(v)?,
            };
            match key.as_str() {
                "kind" => match serde_json::from_slice::<Option<String>>(&w.buf[v..end]) {
                    Ok(Some(kind)) => said = Said::of(&kind),
                    Ok(None) => {}
                    Err(_) => return Ok(Doc::Sequential),
                },
                // The object is read as its kind from here: it has no items of its own.
                "metadata" | "spec" | "status" if matches!(said, Said::Read(_)) => {
                    return match w.value_end(0)? {
                        Some(end) => Ok(self.whole(end)),
                        None => Ok(Doc::Sequential),
                    };
                }
                _ => {}
            }
            let (s, b) = w.skip_ws(end)?;
            match b {
                Some(b',') => i = s + 1,
                Some(b'}') => return Ok(self.whole(s + 1)),
                _ => return Ok(Doc::Sequential),
            }
        }
    }

    /// Read `buf[..end]`, one complete top-level object that is no List to split, with
    /// the parent's visitor. If that fails, the sequential reader reads it again where it
    /// is, for the error's line and column.
    fn whole(&mut self, end: usize) -> Doc {
        let mut sink = Sink::new(&mut self.out);
        let mut de = serde_json::Deserializer::from_slice(&self.window.buf[..end]);
        let seed = TopSeed {
            sink: &mut sink,
            injected: None,
        };
        match seed.deserialize(&mut de) {
            Ok(_) => Doc::Done(end),
            Err(_) => Doc::Sequential,
        }
    }

    /// The List at the window's start, whose items array opens at `buf[open]`; returns
    /// the window index after the List.
    fn list(
        &mut self,
        index: usize,
        head: Vec<u8>,
        open: usize,
        hint: Option<Kind>,
    ) -> Result<usize, InputError> {
        let start = self.window.pos(0);
        let open_pos = self.window.pos(open + 1);
        let mut items = Items {
            index,
            objects: 1,
            orphans: Vec::new(),
            head,
            start,
            open: open_pos,
            last: None,
            tail: open + 1,
            hint,
        };
        let mut batch = empty(hint);
        let mut i = open + 1;
        let mut after = After::Open;
        let close = loop {
            let (s, b) = match self.window.skip_ws(i) {
                Ok(found) => found,
                Err(e) => return self.fail(&mut items, batch, e),
            };
            match (after, b) {
                (After::Open | After::Item, Some(b']')) => {
                    let shift = self.flush(&mut items, batch)?;
                    break s - shift;
                }
                (After::Item, Some(b',')) => {
                    after = After::Comma;
                    i = s + 1;
                }
                (After::Open | After::Comma, Some(b'{')) => {
                    let end = match self.window.value_end(s) {
                        Ok(end) => end,
                        Err(e) => return self.fail(&mut items, batch, e),
                    };
                    let Some(end) = end else {
                        // The stream ends inside this item.
                        let shift = self.flush(&mut items, batch)?;
                        return Err(self.item_error(&items, s - shift));
                    };
                    let from = self.window.pos(s);
                    let to = self.window.pos(end);
                    batch.items.push((s..end, from));
                    items.last = Some((from, to));
                    items.tail = end;
                    after = After::Item;
                    i = end;
                    if end - batch.items[0].0.start >= BATCH {
                        batch.bytes = self.window.split_off(end);
                        let full = std::mem::replace(&mut batch, empty(hint));
                        self.send(&mut items, full)?;
                        items.tail = 0;
                        i = 0;
                    }
                }
                (After::Open | After::Comma, Some(b)) if b != b']' => {
                    // Not an object: the sequential reader refuses it; read it so, with
                    // what follows it.
                    let shift = self.flush(&mut items, batch)?;
                    let s = s - shift;
                    match b {
                        b'"' | b'[' => {
                            self.window.value_end(s)?;
                        }
                        _ => {
                            self.window.scalar_end(s)?;
                        }
                    }
                    return Err(self.item_error(&items, s));
                }
                _ => return Err(self.skeleton_error(&mut items, batch)),
            }
        };
        items.tail = items.tail.min(close);
        // Items done and merged: the rest of the object.
        let mut j = close + 1;
        let doc_end = loop {
            let (s, b) = self.window.skip_ws(j)?;
            match b {
                Some(b'}') => break s + 1,
                Some(b',') => {}
                _ => return Err(self.skeleton_error(&mut items, empty(hint))),
            }
            let (k, b) = self.window.skip_ws(s + 1)?;
            let key_end = match b {
                Some(b'"') => self.window.value_end(k)?,
                _ => None,
            };
            let Some(key_end) = key_end else {
                return Err(self.skeleton_error(&mut items, empty(hint)));
            };
            let (c, b) = self.window.skip_ws(key_end)?;
            if b != Some(b':') {
                return Err(self.skeleton_error(&mut items, empty(hint)));
            }
            let (v, b) = self.window.skip_ws(c + 1)?;
            let end = match b {
                Some(b'{' | b'[' | b'"') => self.window.value_end(v)?,
                Some(_) => Some(self.window.scalar_end(v)?),
                None => None,
            };
            let Some(end) = end else {
                return Err(self.skeleton_error(&mut items, empty(hint)));
            };
            j = end;
        };
        // The List itself, its items replaced by what was read of them.
        let mut skeleton = items.head.clone();
        skeleton.push(b'[');
        skeleton.extend_from_slice(&self.window.buf[close..doc_end]);
        let backup = (!items.orphans.is_empty()).then(|| items.orphans.clone());
        let injected = Injected {
            orphans: std::mem::take(&mut items.orphans),
            objects: items.objects - 1,
        };
        let mut sink = Sink::new(&mut self.out);
        let mut de = serde_json::Deserializer::from_slice(&skeleton);
        let seed = TopSeed {
            sink: &mut sink,
            injected: Some(injected),
        };
        match seed.deserialize(&mut de) {
            Ok(_) => Ok(doc_end),
            Err(compact) => {
                let at = sink.failed_at();
                items.orphans = backup.unwrap_or_default();
                Err(self
                    .placed_error(&items)
                    .unwrap_or_else(|| InputError::from_json(index, at, compact)))
            }
        }
    }

    /// Send a batch of items to the workers, merging what came back meanwhile.
    fn send(&mut self, items: &mut Items, batch: Batch) -> Result<(), InputError> {
        while self.sent - self.merged >= self.limit {
            self.merge_next(items)?;
        }
        let tx = self.work_tx.as_ref().expect("workers run while reading");
        tx.send((self.sent, batch))
            .expect("the workers live as long as the read");
        self.sent += 1;
        Ok(())
    }

    /// Send what is left of a batch (its items still in the window) and merge every
    /// batch sent. Returns by how much the window's indices moved down.
    fn flush(&mut self, items: &mut Items, mut batch: Batch) -> Result<usize, InputError> {
        let mut shift = 0;
        if let Some((last, _)) = batch.items.last() {
            shift = last.end;
            batch.bytes = self.window.split_off(shift);
            items.tail = 0;
            self.send(items, batch)?;
        }
        while self.merged < self.sent {
            self.merge_next(items)?;
        }
        Ok(shift)
    }

    /// Merge the next batch in document order, waiting for it if need be.
    fn merge_next(&mut self, items: &mut Items) -> Result<(), InputError> {
        let decoded = loop {
            if let Some(d) = self.decoded.remove(&self.merged) {
                break d;
            }
            let (seq, d) = self
                .done_rx
                .recv()
                .expect("the workers live as long as the read");
            self.decoded.insert(seq, d);
        };
        self.merged += 1;
        let Decoded {
            batch,
            out,
            bad,
            orphans,
            objects,
            failed,
        } = decoded;
        let base = items.objects;
        // What this thread read before the batch comes before it in the document.
        self.settle();
        self.bad.then(bad);
        let o = &mut self.out;
        o.nodes.extend(out.nodes);
        o.pods.extend(out.pods);
        o.deployments.extend(out.deployments);
        o.replica_sets.extend(out.replica_sets);
        o.pod_disruption_budgets.extend(out.pod_disruption_budgets);
        o.skipped += out.skipped;
        self.settled = Settled::of(&self.out);
        items
            .orphans
            .extend(orphans.into_iter().map(|(at, m)| (at + base, m)));
        items.objects += objects;
        if let Some((i, before)) = failed {
            // Read the failing item again at its place, for the sequential reader's error.
            let (range, pos) = &batch.items[i];
            let mut pieces = Pieces(Default::default());
            pieces.gap(Pos::default(), *pos);
            pieces.push_bytes(&batch.bytes[range.start..]);
            return Err(item_error_at(items, pieces, base + before));
        }
        if self.window.spare.len() < 2 {
            self.window.spare.push(batch.bytes);
        }
        Ok(())
    }

    /// The item at `buf[from..]` failed or is cut short: its error, read from there to
    /// the end of the window.
    fn item_error(&mut self, items: &Items, from: usize) -> InputError {
        let pos = self.window.pos(from);
        let mut pieces = Pieces(Default::default());
        pieces.gap(Pos::default(), pos);
        pieces.push_bytes(&self.window.buf[from..self.window.end]);
        item_error_at(items, pieces, items.objects)
    }

    /// An I/O error while reading items: earlier items' errors come first.
    fn fail(
        &mut self,
        items: &mut Items,
        batch: Batch,
        e: InputError,
    ) -> Result<usize, InputError> {
        self.flush(items, batch)?;
        Err(e)
    }

    /// The List's own syntax (between or after its items) is wrong, or the stream ends
    /// in it: after the items sent, the error as the sequential reader gives it.
    fn skeleton_error(&mut self, items: &mut Items, batch: Batch) -> InputError {
        if let Err(e) = self.flush(items, batch) {
            return e;
        }
        self.placed_error(items)
            .expect("a List whose syntax is wrong fails to read")
    }

    /// The document read again without its items' contents (the last one replaced by
    /// `0` and whitespace of its shape, the others by whitespace), so that an error
    /// outside the items has the sequential reader's message, line and column.
    fn placed_error(&mut self, items: &Items) -> Option<InputError> {
        let mut pieces = Pieces(Default::default());
        pieces.gap(Pos::default(), items.start);
        pieces.push_bytes(&items.head);
        pieces.push_bytes(b"[");
        if let Some((from, to)) = items.last {
            pieces.gap(items.open, from);
            pieces.push_bytes(b"0");
            pieces.gap(from.plus(1), to);
        }
        pieces.push_bytes(&self.window.buf[items.tail..self.window.end]);
        let mut scratch = AnalysisInput::default();
        let mut sink = Sink::new(&mut scratch);
        let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(pieces));
        let seed = TopSeed {
            sink: &mut sink,
            injected: Some(Injected {
                orphans: items.orphans.clone(),
                objects: items.objects - 1,
            }),
        };
        match seed.deserialize(&mut de) {
            Err(e) => Some(InputError::from_json(items.index, sink.failed_at(), e)),
            Ok(_) => None,
        }
    }
}

/// Read an item again behind `pieces`' whitespace: the sequential reader's error for it.
fn item_error_at(items: &Items, pieces: Pieces, objects: usize) -> InputError {
    let mut scratch = AnalysisInput::default();
    let mut sink = Sink::new(&mut scratch);
    sink.objects = objects;
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(pieces));
    let seed = ObjectSeed {
        sink: &mut sink,
        hint: items.hint,
        injected: None,
    };
    match seed.deserialize(&mut de) {
        Err(e) => InputError::from_json(items.index, sink.failed_at(), e),
        Ok(_) => unreachable!("an item that failed to read fails again"),
    }
}

fn empty(hint: Option<Kind>) -> Batch {
    Batch {
        bytes: Vec::new(),
        items: Vec::new(),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::{Block, ValueEnd, prefix_xor};
    use proptest::prelude::*;

    /// Where the value ends, one byte at a time: depth, strings, escapes (the rule
    /// [`ValueEnd`] implements, written out plainly).
    fn value_end_bytewise(bytes: &[u8]) -> Option<usize> {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for (i, &b) in bytes.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if in_string {
                if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                    if depth == 0 {
                        return Some(i + 1);
                    }
                }
            } else if b == b'"' {
                in_string = true;
            } else if b == b'{' || b == b'[' {
                depth += 1;
            } else if b == b'}' || b == b']' {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i + 1);
                }
            }
        }
        None
    }

    proptest! {
        /// In one piece or cut anywhere: the same end as a byte-at-a-time scan, on any
        /// bytes (the scanner never validates). The alphabet is mostly the bytes that
        /// matter, plus bytes one bit away from them (`;`, `|`, 0xDB, 0xFB, 0xDD, 0xA2,
        /// 0xDC, 0x02), which a scan testing several bytes at once meets as near misses.
        /// Values run over several 64-byte blocks, with and without backslashes in
        /// them, and some blocks lie wholly inside a long string.
        #[test]
        fn the_scan_ends_values_where_a_bytewise_scan_does(
            pieces in proptest::collection::vec(
                prop_oneof![
                    40 => prop_oneof![
                        4 => Just(b'"'), 1 => Just(b'\\'), 3 => Just(b'{'), 3 => Just(b'}'),
                        3 => Just(b'['), 3 => Just(b']'), 10 => Just(b'a'), 2 => Just(b' '),
                        1 => Just(b';'), 1 => Just(b'|'), 1 => Just(0xDB), 1 => Just(0xFB),
                        1 => Just(0xDD), 1 => Just(0xA2), 1 => Just(0xDC), 1 => Just(0x02),
                        2 => any::<u8>(),
                    ].prop_map(|b| vec![b]),
                    // A long string: whole blocks inside one, brackets and all.
                    1 => proptest::collection::vec(
                        prop_oneof![8 => Just(b'x'), 1 => Just(b'{'), 1 => Just(b']')],
                        0..200,
                    ).prop_map(|run| [&b"\""[..], &run, b"\""].concat()),
                ],
                0..300,
            ),
            cuts in proptest::collection::vec(0usize..600, 0..6),
            opening in proptest::collection::vec(prop_oneof![Just(b'{'), Just(b'[')], 0..12),
        ) {
            // The values the splitter meets start with a bracket and run deep: among random
            // bytes both would be rare, and most values would end before a whole block.
            let bytes = [opening, pieces.concat()].concat();
            let want = value_end_bytewise(&bytes);
            prop_assert_eq!(ValueEnd::default().scan(&bytes), want);
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= bytes.len()).collect();
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut scan = ValueEnd::default();
            let mut from = 0;
            let mut got = None;
            for cut in cuts {
                if let Some(n) = scan.scan(&bytes[from..cut]) {
                    got = Some(from + n);
                    break;
                }
                from = cut;
            }
            prop_assert_eq!(got, want);
        }

    }

    /// The block masks are the byte-at-a-time ones for every byte value at every
    /// position of a block (256 blocks, block `j` holding byte `(j + k) % 256` at `k`).
    #[test]
    fn block_masks_match_a_bytewise_reading_for_every_byte() {
        for j in 0..256usize {
            let block: [u8; 64] = std::array::from_fn(|k| ((j + k) % 256) as u8);
            assert_eq!(Block::of(&block), Block::of_bytes(&block), "block {j}");
        }
    }

    /// The running XOR that says which bytes lie inside a string.
    #[test]
    fn prefix_xor_is_the_parity_of_the_bits_up_to_each() {
        for x in [
            0u64,
            1,
            0b1001,
            0b0110_0001,
            u64::MAX,
            1 << 63,
            0xF0F0_0000_0000_0F0F,
        ] {
            let want = (0..64).fold(0u64, |acc, k| {
                let parity = (x & ((2u128 << k) - 1) as u64).count_ones() as u64 & 1;
                acc | parity << k
            });
            assert_eq!(prefix_xor(x), want, "{x:#b}");
        }
    }
}
