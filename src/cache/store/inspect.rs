//! Looking at what is stored without changing it: stats, listing, checked copies of
//! records (safe beside a running larder), and verification.

use super::scan::scan_area;
use super::*;

impl Store {
    /// The figures a status page shows, in O(1): nothing is read from the file and the
    /// index is not walked (the live bytes are kept as objects come and go).
    pub fn summary(&self) -> Summary {
        let area_len = self.area_end - FILE_HEADER_LEN;
        let free_bytes = self.horizon - self.cursor;
        let live_bytes = self.index.bytes();
        Summary {
            objects: self.index.len() as u64,
            live_bytes,
            dead_bytes: area_len
                .saturating_sub(free_bytes)
                .saturating_sub(live_bytes),
            free_bytes,
            capacity: self.area_end,
            evictions: self.counters.evictions,
            write_errors: self.counters.write_errors,
            paused_until: if self.disabled_until > self.clock {
                self.disabled_until
            } else {
                0
            },
            dropped_corrupt: self.counters.dropped_corrupt,
            synced_at: self.sync.synced_at,
        }
    }

    /// The oldest stored time (unix seconds) among the indexed objects, `None` when
    /// there are none. From the index in memory (no read of the file): O(objects), about
    /// a tenth of a millisecond per 100,000 objects.
    pub fn oldest_stored(&self) -> Option<u64> {
        self.index.iter().map(|(_, e)| e.stored()).min()
    }

    /// Counts and positions; O(objects) (the index is walked for the oldest and newest
    /// times; the live bytes are those of [`Store::summary`]).
    pub fn stats(&self) -> Stats {
        let mut oldest: Option<u64> = None;
        let mut newest: Option<u64> = None;
        for (_, e) in self.index.iter() {
            oldest = Some(oldest.map_or(e.stored(), |t| t.min(e.stored())));
            newest = Some(newest.map_or(e.stored(), |t| t.max(e.stored())));
        }
        let summary = self.summary();
        Stats {
            objects: summary.objects,
            live_bytes: summary.live_bytes,
            dead_bytes: summary.dead_bytes,
            free_bytes: summary.free_bytes,
            capacity: self.area_end,
            cursor: self.cursor,
            horizon: self.horizon,
            oldest,
            newest,
            pinned: self.pins.len() as u64,
            filling: self.fills.len() as u64,
            evictions: self.counters.evictions,
            second_chances: self.counters.second_chances,
            copied_bytes: self.counters.copied_bytes,
            dropped_corrupt: self.counters.dropped_corrupt,
            write_errors: self.counters.write_errors,
            bytes_written: self.file.bytes_written,
            index_bytes: self.index.memory_bytes() as u64,
            disabled_until: self.disabled_until,
        }
    }

    /// The live bytes counted the slow way, from every indexed record's header: what
    /// the kept figure must always equal.
    #[cfg(test)]
    pub(crate) fn live_bytes_by_headers(&self) -> u64 {
        self.index
            .iter()
            .filter_map(|(_, e)| self.header_at(e.off()))
            .map(|h| u64::from(h.total_len))
            .sum()
    }

    /// Every indexed object, in no particular order (payloads not checked; the key is
    /// read through the map). On a read-only store, where a record may be overwritten
    /// while it is read, list with [`Store::checked_objects`] instead.
    pub fn objects(&self) -> impl Iterator<Item = ObjectInfo<'_>> + '_ {
        self.index.iter().filter_map(move |(_, e)| {
            let off = e.off();
            let h = self.header_at(off).filter(|h| h.kind == Kind::Object)?;
            Some(ObjectInfo {
                key: self.key_at(off, &h)?,
                off,
                seq: h.seq,
                head_len: u64::from(h.head_len),
                body_len: h.body_len,
                total_len: u64::from(h.total_len),
                meta: meta_of(&h),
                verified: e.has(VERIFIED),
            })
        })
    }

    /// The object stored under `key`, copied out of the file with its body and checked
    /// (header CRC, key, payload CRC; see [`CheckedObject`]), or `None` if there is none
    /// or it fails a check. Works on any store; on a read-only one it is the way to read
    /// an object, since the record may be overwritten meanwhile: a record that changed
    /// while it was copied fails its CRC and is not returned.
    pub fn read_object(&self, key: &[u8]) -> Option<CheckedObject> {
        let hash = self.index.hash(key);
        let entry = self.index.get(hash)?;
        let mut scratch = Vec::new();
        self.copy_object(entry.off(), hash, true, &mut scratch)
            .filter(|o| o.key == key)
    }

    /// Every indexed object that passes its checks, copied out without its body (see
    /// [`CheckedObject`]), in no particular order. Reads every byte of every object (the
    /// payload CRC); objects being overwritten while they are read are left out.
    pub fn checked_objects(&self) -> impl Iterator<Item = CheckedObject> + '_ {
        let mut scratch = Vec::new();
        self.index
            .iter()
            .filter_map(move |(hash, e)| self.copy_object(e.off(), hash, false, &mut scratch))
    }

    /// Copies the object record at `off` and checks it: a valid header of an object,
    /// a key whose hash is `hash` (it is still the record the index names), and the
    /// payload CRC over exactly the bytes copied. The body is copied when `with_body`,
    /// else only hashed, in chunks through `scratch`.
    fn copy_object(
        &self,
        off: u64,
        hash: u64,
        with_body: bool,
        scratch: &mut Vec<u8>,
    ) -> Option<CheckedObject> {
        let h = self.header_at(off).filter(|h| h.kind == Kind::Object)?;
        let r = object_ref(off, &h);
        let key = self
            .file
            .get(off + RECORD_HEADER_LEN, u64::from(h.key_len))?
            .to_vec();
        if self.index.hash(&key) != hash {
            return None;
        }
        let head = self.bytes(r.head.clone()).to_vec();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&key);
        crc.update(&head);
        let mut body = Vec::new();
        if with_body {
            body = self.file.get(r.body.start, h.body_len)?.to_vec();
            crc.update(&body);
        } else {
            let mut at = r.body.start;
            while at < r.body.end {
                let n = (r.body.end - at).min(COPY_CHUNK);
                scratch.clear();
                scratch.extend_from_slice(self.file.get(at, n)?);
                crc.update(scratch);
                at += n;
            }
        }
        (crc.finalize() == h.payload_crc).then(|| CheckedObject {
            off,
            seq: h.seq,
            key,
            head,
            body,
            body_len: h.body_len,
            total_len: u64::from(h.total_len),
            meta: meta_of(&h),
        })
    }

    /// Checks every indexed object's header and payload CRC; returns the bad ones by
    /// offset. Reads every byte of every object. See [`Store::check`].
    pub fn verify(&self) -> Vec<(u64, VerifyError)> {
        self.check().bad
    }

    /// Checks every indexed object's header and payload CRC (reads every byte of every
    /// object) and reports the bad ones by offset.
    ///
    /// On a read-only store beside a running larder, a record may be replaced, evicted
    /// or overwritten between the scan and its check, which is not damage. There, a
    /// record that fails is looked for again in a new scan of the file, made after the
    /// failure: only if that scan still finds it (same offset and sequence number) and
    /// it still fails is it bad; otherwise it is counted in [`VerifyReport::changed`].
    /// (The ring hides a record behind a pad before it writes over it, so a record that
    /// a scan reaches is whole.)
    pub fn check(&self) -> VerifyReport {
        let mut report = VerifyReport::default();
        let mut suspects = Vec::new();
        for (hash, e) in self.index.iter() {
            report.checked += 1;
            if let Some(bad) = self.check_record(e.off(), Some(hash)) {
                suspects.push(bad);
            }
        }
        if self.is_read_only() && !suspects.is_empty() {
            let mut fresh = Index::new();
            scan_area(
                &self.file,
                self.area_end,
                &mut fresh,
                &mut ScanReport::default(),
                self.file.checkpoint(),
                // finding the record again is the question here, not its bytes
                false,
            );
            let found: std::collections::HashSet<u64> =
                fresh.iter().map(|(_, e)| e.off()).collect();
            let before = suspects.len() as u64;
            suspects.retain(|&(off, seq, _)| {
                found.contains(&off)
                    && self
                        .check_record(off, None)
                        .is_some_and(|(_, now_seq, _)| now_seq == seq)
            });
            report.changed = before - suspects.len() as u64;
        }
        report.bad = suspects.into_iter().map(|(off, _, e)| (off, e)).collect();
        report.bad.sort_unstable_by_key(|&(off, _)| off);
        report
    }

    /// What is wrong with the object record at `off`, with its sequence number (0 if
    /// its header does not decode), or `None` if it is sound. With `hash`, a record
    /// whose key has another hash (not the record the index names) is wrong too.
    fn check_record(&self, off: u64, hash: Option<u64>) -> Option<(u64, u64, VerifyError)> {
        let Some(h) = self.header_at(off).filter(|h| h.kind == Kind::Object) else {
            return Some((off, 0, VerifyError::Header));
        };
        if let Some(hash) = hash {
            let key = self.key_at(off, &h).map(|k| self.index.hash(k));
            if key != Some(hash) {
                return Some((off, h.seq, VerifyError::Header));
            }
        }
        let computed = self
            .file
            .get(off + RECORD_HEADER_LEN, h.payload_len())
            .map(crc32fast::hash);
        match computed {
            None => Some((off, h.seq, VerifyError::Header)),
            Some(c) if c != h.payload_crc => Some((
                off,
                h.seq,
                VerifyError::Payload {
                    stored: h.payload_crc,
                    computed: c,
                },
            )),
            Some(_) => None,
        }
    }
}
