//! The recovery walk run at open: rebuilds the index and the ring position from the
//! file (see "Recovery" in the module docs).

use super::*;

/// Where the scan left the ring: the highest sequence number seen, the end of the
/// record with the highest one (the cursor without a checkpoint), the offset of the
/// last object or tombstone found, and with a checkpoint the end of the last record
/// trusted inside its window.
pub(super) struct ScanEnd {
    max_seq: u64,
    /// The highest sequence number of any valid header, trusted or not (never reused).
    seen_seq: u64,
    cursor: u64,
    last: Option<u64>,
    window_end: u64,
    /// Records trusted inside the window (or crossing into it), in file order.
    kept_in_window: Vec<(u64, u64)>,
    /// Records outside the window whose payload failed the check, and objects that a
    /// newer record of their key supersedes: (offset, length).
    damaged: Vec<(u64, u64)>,
    superseded: Vec<(u64, u64)>,
}

impl Store {
    /// What the start-up scan found.
    pub fn scan_report(&self) -> &ScanReport {
        &self.report
    }

    /// Rebuilds the index and the ring position from the file (see the module docs).
    pub(super) fn scan(&mut self) {
        self.file.advise(true);
        let checkpoint = self.file.checkpoint();
        let end = scan_area(
            &self.file,
            self.area_end,
            &mut self.index,
            &mut self.report,
            checkpoint,
            true,
        );
        // Above every number a record on the disk may carry: the window may hide records
        // written after the checkpoint behind a pad, but each took 64 bytes of it at least.
        let hidden = checkpoint.map_or(0, |c| {
            c.next_seq.saturating_add((c.limit - c.cursor) / ALIGN)
        });
        self.next_seq = end.seen_seq.max(hidden).saturating_add(1);
        if let Some(c) = checkpoint {
            // Writes since the checkpoint lie in its window: the trusted records there
            // end at `window_end`, and the rest of it up to the limit is free.
            self.cursor = end.window_end;
            self.horizon = c.limit.max(end.window_end);
            self.sync.counter = c.counter;
            self.sync.durable = c.counter;
            self.report.checkpoint = Some(c.counter);
            let mut dead = end.damaged;
            dead.extend(end.superseded);
            self.repair = Some(Repair {
                window_start: c.cursor,
                kept: end.kept_in_window,
                dead,
            });
        } else if end.max_seq > 0 {
            self.cursor = end.cursor;
            // Records past the cursor are the previous lap's; none means a first lap.
            self.horizon = match end.last {
                Some(l) if l >= end.cursor => end.cursor,
                _ => self.area_end,
            };
        }
        self.trim_to_max_entries();
        self.report.objects = self.index.len() as u64;
        self.file.advise(false);
        self.file.release_pages();
    }

    /// Drops the oldest entries beyond `max_entries` (the option may have shrunk).
    fn trim_to_max_entries(&mut self) {
        let excess = self.index.len().saturating_sub(self.opts.max_entries);
        if excess == 0 {
            return;
        }
        let mut by_age: Vec<(u64, u64)> = self
            .index
            .iter()
            .map(|(hash, e)| (self.header_at(e.off()).map_or(0, |h| h.seq), hash))
            .collect();
        by_age.sort_unstable();
        for &(_, hash) in by_age.iter().take(excess) {
            self.index.remove(hash);
        }
        self.report.over_limit = excess as u64;
    }
}

/// The recovery walk (see the module docs) over the data area of `file`, ending at
/// `area_end`: fills `index` with each key's newest object (a tombstone leaves none)
/// and counts what it found in `report`. With a checkpoint, inside its window only
/// records numbered after it count, and only whole (their payload is checked here);
/// outside it, a record numbered from its `open_seq` on is checked here too.
pub(super) fn scan_area(
    file: &CacheFile,
    area_end: u64,
    index: &mut Index,
    report: &mut ScanReport,
    checkpoint: Option<Checkpoint>,
    check_payloads: bool,
) -> ScanEnd {
    let mut end = ScanEnd {
        max_seq: 0,
        seen_seq: 0,
        cursor: FILE_HEADER_LEN,
        last: None,
        window_end: checkpoint.map_or(FILE_HEADER_LEN, |c| c.cursor),
        kept_in_window: Vec::new(),
        damaged: Vec::new(),
        superseded: Vec::new(),
    };
    let file_id = file.header().file_id;
    let area_len = area_end - FILE_HEADER_LEN;
    let Some(area) = file.get(FILE_HEADER_LEN, area_len) else {
        return end;
    };
    // Offsets relative to the area. Without a checkpoint the window is empty.
    let (w_start, w_end, newer_from, check_from) = match checkpoint {
        Some(c) => (
            c.cursor - FILE_HEADER_LEN,
            c.limit - FILE_HEADER_LEN,
            c.next_seq,
            c.open_seq,
        ),
        None => (u64::MAX, u64::MAX, 0, u64::MAX),
    };
    let mut rel = 0u64;
    while let Some(block) = slice(area, rel, RECORD_HEADER_LEN) {
        let in_window = w_start <= rel && rel < w_end;
        let Some(h) = header_in(area, rel, file_id, area_end) else {
            // Inside the window lies dead space by design, not damage.
            if !in_window && block.iter().any(|&x| x != 0) {
                report.damaged_bytes += ALIGN;
            }
            rel += ALIGN;
            continue;
        };
        let total = u64::from(h.total_len);
        end.seen_seq = end.seen_seq.max(h.seq);
        let newer = h.kind != Kind::Pad && h.seq >= newer_from;
        if in_window && h.kind == Kind::Pad {
            // What a pad covers inside the window is dead or was written after the
            // checkpoint (then lost with it), so the walk may jump it; but a pad from
            // before the checkpoint may reach past the window, and past the window's
            // end the file is trusted as it is: never further than that.
            rel = (rel + total).min(w_end);
            continue;
        }
        if in_window && (!newer || rel + total > w_end) {
            // Dead at the checkpoint: step over it byte-block by byte-block, trusting
            // nothing it says.
            rel += ALIGN;
            continue;
        }
        // A pad or a fill's room that runs from before the window into it is not
        // followed past the window's start: what lies there is judged as above.
        let crossing = rel < w_start && rel + total > w_start;
        let skip = |rel: u64| {
            if in_window {
                rel + ALIGN
            } else if crossing {
                w_start
            } else {
                rel + total
            }
        };
        report.records += 1;
        let key_start = rel + RECORD_HEADER_LEN;
        let key = match (h.kind, slice(area, key_start, u64::from(h.key_len))) {
            (Kind::Pad, _) | (_, None) => {
                rel = skip(rel);
                continue;
            }
            (_, Some(key)) => key,
        };
        if h.kind == Kind::Tombstone {
            // Tombstones are tiny and a torn one must not delete another key.
            if crc32fast::hash(key) != h.payload_crc {
                report.damaged_bytes += total;
                rel = skip(rel);
                continue;
            }
            report.tombstones += 1;
        }
        let mut flags = 0;
        if check_payloads
            && h.kind == Kind::Object
            && (newer || h.seq >= check_from)
            && checkpoint.is_some()
        {
            // Written after the checkpoint (or begun before it and finished after):
            // its bytes may not all have reached the disk.
            let whole = slice(area, key_start, h.payload_len())
                .is_some_and(|p| crc32fast::hash(p) == h.payload_crc);
            if !whole {
                report.damaged_bytes += total;
                if !in_window {
                    end.damaged.push((FILE_HEADER_LEN + rel, total));
                }
                rel = skip(rel);
                continue;
            }
            flags = VERIFIED;
        }
        let off = FILE_HEADER_LEN + rel;
        if h.seq > end.max_seq {
            end.max_seq = h.seq;
            end.cursor = off + total;
        }
        if in_window || crossing {
            end.window_end = end.window_end.max(off + total);
            end.kept_in_window.push((off, off + total));
        }
        end.last = Some(off);
        rel += total;
        let hash = index.hash(key);
        if let Some(old) = index.get(hash) {
            report.superseded += 1;
            let old_seq = header_in(area, old.off() - FILE_HEADER_LEN, file_id, area_end)
                .map_or(0, |o| o.seq);
            if old_seq > h.seq {
                if h.kind == Kind::Object {
                    end.superseded.push((off, total));
                }
                continue;
            }
            if !old.has(TOMBSTONE) {
                end.superseded.push((old.off(), old.len()));
            }
        }
        if h.kind == Kind::Tombstone {
            flags = TOMBSTONE;
        }
        index.insert(hash, Entry::new(off, total, h.stored, h.expires, flags));
    }
    index.retain(|e| !e.has(TOMBSTONE));
    end
}

/// The valid record header at `rel` in `area` (the data area, which ends at `area_end`
/// in the file), decoded from a copy.
fn header_in(area: &[u8], rel: u64, file_id: u64, area_end: u64) -> Option<RecordHeader> {
    let mut copy = [0u8; 64];
    copy.copy_from_slice(slice(area, rel, RECORD_HEADER_LEN)?);
    let room = area_end.checked_sub(FILE_HEADER_LEN + rel)?;
    decode_record_header(&copy, file_id, room)
}
