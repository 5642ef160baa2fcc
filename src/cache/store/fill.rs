//! Storing: streaming fills into a reservation, committing or aborting them,
//! refreshing a stored object's head, and tombstones for invalidated keys.

use super::*;

impl Store {
    /// Starts storing an object: reserves room for `key`, `head` and a body of
    /// `body_len` bytes (`None`: unknown, the room grows while this is the newest fill)
    /// and writes the key and head. The object is invisible until [`Store::commit`].
    ///
    /// `meta.stored` is taken as the current time for the write back-off. Errors:
    /// `TooLarge` (key over 65535 bytes, head over 64 KiB, body over `max_object`, or the
    /// record over a quarter of the area), `Disabled`, `Busy`, `Io`.
    pub fn begin(
        &mut self,
        key: &[u8],
        head: &[u8],
        meta: Meta,
        body_len: Option<u64>,
    ) -> Result<Fill, CacheError> {
        self.clock = self.clock.max(meta.stored);
        self.check_writable()?;
        self.check_enabled()?;
        let key_len = u16::try_from(key.len()).map_err(|_| CacheError::TooLarge)?;
        let head_len = u32::try_from(head.len())
            .ok()
            .filter(|&l| u64::from(l) <= MAX_HEAD_LEN)
            .ok_or(CacheError::TooLarge)?;
        let (k, hl) = (u64::from(key_len), u64::from(head_len));
        let len = match body_len {
            Some(b) if b > self.opts.max_object => return Err(CacheError::TooLarge),
            Some(b) => record_len(k, hl, b).filter(|&l| l <= self.max_record),
            None => record_len(k, hl, UNKNOWN_LEN_STEP.min(self.opts.max_object))
                .map(|l| l.min(self.max_record))
                .filter(|&l| record_len(k, hl, 0).is_some_and(|min| min <= l)),
        }
        .ok_or(CacheError::TooLarge)?;
        self.make_room(len, Walk::Reserve, !self.sync.background)?;
        let start = self.cursor;
        // The disk blocks first: on a full disk nothing is claimed, and once begun the
        // body's writes cannot fail for want of space.
        self.reserve(start, start + len)?;
        self.claim(start, len)?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.extend_from_slice(key);
        buf.extend_from_slice(head);
        let written = self.put(start + RECORD_HEADER_LEN, &buf);
        self.buf = buf;
        written?;
        self.cursor = start + len;
        let seq = self.take_seq();
        self.fills.insert(start, (start + len, seq));
        let mut crc = crc32fast::Hasher::new();
        crc.update(key);
        crc.update(head);
        Ok(Fill {
            start,
            reserved: len,
            seq,
            hash: self.index.hash(key),
            key_len,
            head_len,
            body_len,
            written: 0,
            crc,
            meta,
            failed: false,
        })
    }

    /// Appends body bytes to `fill`. Errors: `TooLarge` (past the announced length or
    /// `max_object`), `Busy` (an unknown-length fill cannot grow: another reservation
    /// came after it, or something pinned is in the way), `Io`. After an error the fill
    /// can only be aborted (commit fails).
    pub fn write(&mut self, fill: &mut Fill, bytes: &[u8]) -> Result<(), CacheError> {
        if fill.failed {
            return Err(CacheError::Busy);
        }
        let result = self.append(fill, bytes);
        fill.failed = result.is_err();
        result
    }

    fn append(&mut self, fill: &mut Fill, bytes: &[u8]) -> Result<(), CacheError> {
        if !self.owns(fill) {
            return Err(CacheError::Busy);
        }
        let written = fill
            .written
            .checked_add(bytes.len() as u64)
            .filter(|&w| w <= self.opts.max_object && fill.body_len.is_none_or(|b| w <= b))
            .ok_or(CacheError::TooLarge)?;
        let (k, hl) = (u64::from(fill.key_len), u64::from(fill.head_len));
        let need = record_len(k, hl, written).ok_or(CacheError::TooLarge)?;
        if need > fill.reserved {
            self.grow(fill, need)?;
        }
        self.put_room(
            fill.start + RECORD_HEADER_LEN + k + hl + fill.written,
            bytes,
        )?;
        fill.crc.update(bytes);
        fill.written = written;
        Ok(())
    }

    /// Extends the room of `fill`, which must end at the cursor, to at least `need`.
    fn grow(&mut self, fill: &mut Fill, need: u64) -> Result<(), CacheError> {
        if need > self.max_record {
            return Err(CacheError::TooLarge);
        }
        if fill.start + fill.reserved != self.cursor {
            return Err(CacheError::Busy);
        }
        let len = need
            .max(fill.reserved.saturating_add(UNKNOWN_LEN_STEP))
            .min(self.max_record);
        self.make_room(len - fill.reserved, Walk::Extend, !self.sync.background)?;
        let end = fill.start + len;
        self.reserve(self.cursor, end)?;
        // As in `claim`: hide all the free space before writing inside it, then the
        // part after the new end, and only then let the fill's pad reach that end.
        self.hide_free_space(self.cursor)?;
        self.hide_free_space(end)?;
        self.put_room(fill.start, &self.pad(len))?;
        self.cursor = end;
        self.fills.insert(fill.start, (end, fill.seq));
        fill.reserved = len;
        Ok(())
    }

    /// Finishes `fill`: checks the body length against the announced one, gives back or
    /// pads the unused room, and writes the record header, which makes the object
    /// visible and points the index at it. Errors: `Incomplete`, `Busy` (the fill failed
    /// earlier), `Superseded` (a fill for the key begun later committed first), `Io`; the
    /// room is released on any error.
    pub fn commit(&mut self, fill: Fill) -> Result<ObjectRef, CacheError> {
        if !self.owns(&fill) {
            return Err(CacheError::Busy);
        }
        if fill.failed {
            self.release(fill.start);
            return Err(CacheError::Busy);
        }
        if let Some(expected) = fill.body_len.filter(|&b| b != fill.written) {
            self.release(fill.start);
            return Err(CacheError::Incomplete {
                expected,
                written: fill.written,
            });
        }
        // A record left behind its replacement could win again after a restart once the
        // replacement is overwritten: it never gets a header.
        if let Some(newer) = self.index.get(fill.hash) {
            if self
                .header_at(newer.off())
                .is_some_and(|h| h.seq > fill.seq)
            {
                self.release(fill.start);
                return Err(CacheError::Superseded);
            }
        }
        // A full index frees an entry before the header makes the object durable.
        if self.index.get(fill.hash).is_none() && self.index.len() >= self.opts.max_entries {
            if let Err(e) = self.evict_oldest_or_sync() {
                self.release(fill.start);
                return Err(e);
            }
        }
        let replaced = self.index.get(fill.hash).map(|e| e.off());
        match self.seal(&fill) {
            Ok(header) => {
                self.insert(fill.hash, fill.start, &header);
                self.fills.remove(&fill.start);
                self.kill(replaced, fill.hash);
                Ok(object_ref(fill.start, &header))
            }
            Err(e) => {
                self.release(fill.start);
                Err(e)
            }
        }
    }

    /// Writes a committed fill's tail pad (or gives the tail back) and then its header.
    fn seal(&mut self, fill: &Fill) -> Result<RecordHeader, CacheError> {
        let (k, hl) = (u64::from(fill.key_len), u64::from(fill.head_len));
        let total = record_len(k, hl, fill.written).ok_or(CacheError::TooLarge)?;
        let end = fill.start + fill.reserved;
        // A fill begun before the latest checkpoint keeps its whole room: a shorter
        // header would uncover the rest of the room, and outside the checkpoint's window
        // nothing may be uncovered before a sync (see "Durability").
        let total = if fill.seq < self.sync.capture_seq {
            fill.reserved
        } else {
            total
        };
        let used_end = fill.start + total;
        if used_end < end {
            if end == self.cursor {
                self.hide_free_space(used_end)?;
                self.cursor = used_end;
            } else {
                self.write_pads(used_end, end)?;
            }
            self.fills.insert(fill.start, (used_end, fill.seq));
        }
        let header = RecordHeader {
            kind: Kind::Object,
            key_len: fill.key_len,
            head_len: fill.head_len,
            // total ≤ max_record ≤ PAD_CHUNK
            total_len: total as u32,
            body_len: fill.written,
            seq: fill.seq,
            requested: fill.meta.requested,
            stored: fill.meta.stored,
            expires: fill.meta.expires,
            payload_crc: fill.crc.clone().finalize(),
        };
        self.put_room(fill.start, &encode_record_header(&header, self.file_id()))?;
        Ok(header)
    }

    /// Points the index at a just-written record (the caller made room in the index).
    fn insert(&mut self, hash: u64, off: u64, h: &RecordHeader) {
        let len = u64::from(h.total_len);
        self.index
            .insert(hash, Entry::new(off, len, h.stored, h.expires, VERIFIED));
    }

    /// [`Store::evict_oldest`]; when that needs to write outside the window, a
    /// checkpoint first (unless checkpoints are taken in the background).
    fn evict_oldest_or_sync(&mut self) -> Result<(), CacheError> {
        match self.evict_oldest() {
            Err(CacheError::Busy) if !self.sync.background => {
                self.sync_now()?;
                self.evict_oldest()
            }
            other => other,
        }
    }

    /// Abandons `fill`: its room stays dead (or is given back if nothing came after it).
    pub fn abort(&mut self, fill: Fill) {
        if self.owns(&fill) {
            self.release(fill.start);
        }
    }

    /// Forgets the fill at `start`; if its room ends at the cursor, the cursor returns
    /// to `start`. Its pad header already covers the room otherwise.
    fn release(&mut self, start: u64) {
        let Some((end, _)) = self.fills.remove(&start) else {
            return;
        };
        // Before the latest checkpoint's cursor the room stays dead (see "Durability").
        if end == self.cursor && start >= self.sync.floor && self.hide_free_space(start).is_ok() {
            self.cursor = start;
        }
    }

    /// Stores a new record for `key` with a new head and meta and the body of `old` (a
    /// 304 refresh); `old` stays untouched. `Gone` if `old`'s record was overwritten or
    /// fails its CRC; otherwise the errors of [`Store::begin`]. The new object counts as
    /// used.
    pub fn refresh(
        &mut self,
        old: &ObjectRef,
        key: &[u8],
        head: &[u8],
        meta: Meta,
    ) -> Result<ObjectRef, CacheError> {
        self.check_writable()?;
        let intact = self.header_at(old.off).filter(|h| {
            h.kind == Kind::Object && h.seq == old.seq && object_ref(old.off, h).body == old.body
        });
        let Some(h) = intact else {
            return Err(CacheError::Gone);
        };
        if !self.payload_ok(old.off, &h) {
            if let Some(hash) = self.key_at(old.off, &h).map(|k| self.index.hash(k)) {
                if self.index.get(hash).is_some_and(|e| e.off() == old.off) {
                    self.drop_corrupt(hash);
                }
            }
            return Err(CacheError::Gone);
        }
        self.pin(old);
        let result = self.store_copy(old.body.clone(), key, head, meta);
        self.unpin(old);
        let new = result?;
        let hash = self.index.hash(key);
        if self.index.get(hash).is_some_and(|e| e.off() == new.off) {
            self.index.set_flag(hash, USED);
        }
        Ok(new)
    }

    /// Stores `key`/`head`/`meta` with a body copied from `body` (a pinned range).
    fn store_copy(
        &mut self,
        body: Range<u64>,
        key: &[u8],
        head: &[u8],
        meta: Meta,
    ) -> Result<ObjectRef, CacheError> {
        let len = body.end - body.start;
        let mut fill = self.begin(key, head, meta, Some(len))?;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(COPY_CHUNK);
            let mut chunk = std::mem::take(&mut self.buf);
            chunk.clear();
            chunk.extend_from_slice(self.bytes(body.start + done..body.start + done + n));
            let written = self.write(&mut fill, &chunk);
            self.buf = chunk;
            if let Err(e) = written {
                self.abort(fill);
                return Err(e);
            }
            done += n;
        }
        self.commit(fill)
    }

    /// Removes `key` and appends a tombstone so it stays removed after a restart.
    /// `Ok(false)` if the key is not indexed. The key leaves the index even when the
    /// tombstone cannot be written (`Disabled`, `Busy`, `Io`; then a restart may bring it
    /// back). A fill for the key begun before this call still commits.
    pub fn invalidate(&mut self, key: &[u8]) -> Result<bool, CacheError> {
        let hash = self.index.hash(key);
        let Some(entry) = self.index.get(hash) else {
            return Ok(false);
        };
        let off = entry.off();
        let stored_key = self.header_at(off).and_then(|h| self.key_at(off, &h));
        if stored_key != Some(key) {
            return Ok(false);
        }
        self.check_writable()?;
        self.index.remove(hash);
        self.check_enabled()?;
        let key_len = u16::try_from(key.len()).map_err(|_| CacheError::TooLarge)?;
        let len = record_len(u64::from(key_len), 0, 0).ok_or(CacheError::TooLarge)?;
        // A tombstone is written even if that takes a checkpoint first: an invalidation
        // must not be lost for want of room in the window.
        self.make_room(len, Walk::Reserve, true)?;
        let start = self.cursor;
        self.reserve(start, start + len)?;
        self.claim(start, len)?;
        self.put(start + RECORD_HEADER_LEN, key)?;
        let tombstone = RecordHeader {
            kind: Kind::Tombstone,
            key_len,
            // len ≤ 64 + 65535 rounded up
            total_len: len as u32,
            seq: self.take_seq(),
            payload_crc: crc32fast::hash(key),
            ..RecordHeader::pad(0)
        };
        self.put(start, &encode_record_header(&tombstone, self.file_id()))?;
        self.cursor = start + len;
        self.kill(Some(off), hash);
        Ok(true)
    }
}
