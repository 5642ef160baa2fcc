//! The cache file's byte layout (format version 2): encoding and decoding of the file
//! header, its two checkpoint slots and record headers, their CRCs, and the recovery
//! walk over a data area.
//!
//! Pure functions over byte slices, no I/O: the store, the tool and the fuzz target all
//! decode through here, and every decoder returns an error or `None` on any input it
//! does not accept — it never panics and never trusts a length it has not checked.
//!
//! All integers are little-endian. The layout, byte by byte, is in `docs/ARCHITECTURE.md`
//! ("The cache file").

/// Bytes at the start of the file taken by the file header (so the data area is
/// page-aligned). The first [`FILE_HEADER_FIELDS_LEN`] hold its fields and
/// [`CHECKPOINT_SLOTS`] the checkpoints; the rest are zero.
pub const FILE_HEADER_LEN: u64 = 4096;
/// Bytes of the file header that carry fields (the rest up to [`FILE_HEADER_LEN`] is zero).
pub const FILE_HEADER_FIELDS_LEN: usize = 48;
/// Every record starts on a multiple of this, and every record length is one.
pub const ALIGN: u64 = 64;
/// Length of a record header.
pub const RECORD_HEADER_LEN: u64 = 64;
/// The format version this code writes. Version 2 is version 1 with checkpoints; a
/// version 1 file is read as it is and becomes version 2 when larder first opens it
/// for writing (an older larder then refuses it rather than write around checkpoints
/// it does not know).
pub const VERSION: u32 = 2;
/// The oldest format version this code reads.
pub const MIN_VERSION: u32 = 1;
/// File offsets of the two checkpoint slots (in different disk sectors of the header
/// page): checkpoints alternate between them, so a torn write spoils one at most.
pub const CHECKPOINT_SLOTS: [u64; 2] = [2048, 3072];
/// A checkpoint's first 4 bytes (`"LCP1"` as little-endian bytes).
pub const CHECKPOINT_MAGIC: u32 = 0x3150_434C;
/// The file's first 8 bytes.
pub const FILE_MAGIC: [u8; 8] = *b"LARDERC\n";
/// A record header's first 4 bytes (`"LRC1"` as little-endian bytes).
pub const RECORD_MAGIC: u32 = 0x3143_524C;
/// Longest stored response head.
pub const MAX_HEAD_LEN: u64 = 65536;
/// Longest record: `total_len` is a u32 and a multiple of [`ALIGN`].
pub const MAX_RECORD_LEN: u64 = u32::MAX as u64 / ALIGN * ALIGN;
/// Largest file: offsets are kept in memory as u32 counts of [`ALIGN`] units.
pub const MAX_CAPACITY: u64 = (u32::MAX as u64 + 1) * ALIGN;

/// The fields of the file header. It is written once, at creation, and never modified.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FileHeader {
    /// Format version the file is in: [`VERSION`], or an older one no lower than [`MIN_VERSION`].
    pub version: u32,
    /// The file's total length; the data area is `[FILE_HEADER_LEN, capacity)`.
    pub capacity: u64,
    /// Random, never 0. Seeds every record's header CRC, so bytes an origin controls
    /// (a cached body) or records copied from another file never pass as headers.
    pub file_id: u64,
    /// Unix seconds at creation.
    pub created: u64,
}

/// Why a file header was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FileHeaderError {
    /// Not a larder cache: bad magic, CRC or field values, or too short.
    NotACache,
    /// A larder cache of a format version this code does not know (never touched).
    Version(u32),
}

/// Kinds of record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// A stored response: key, head, body.
    Object,
    /// "This key is absent" (an invalidation); carries the key, no head or body.
    Tombstone,
    /// Dead space of `total_len` bytes (a reservation being written, an aborted one,
    /// free space, the unusable tail before the ring wraps).
    Pad,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Object => 1,
            Kind::Tombstone => 2,
            Kind::Pad => 3,
        }
    }

    fn from_code(code: u8) -> Option<Kind> {
        match code {
            1 => Some(Kind::Object),
            2 => Some(Kind::Tombstone),
            3 => Some(Kind::Pad),
            _ => None,
        }
    }
}

/// The fields of a record header (the magic, flags and header CRC are implied).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RecordHeader {
    /// What the record holds.
    pub kind: Kind,
    /// Length of the key that follows the header.
    pub key_len: u16,
    /// Length of the stored response head that follows the key.
    pub head_len: u32,
    /// Length of the whole record including this header and padding; a multiple of
    /// [`ALIGN`]. For a pad, the length of the gap it covers.
    pub total_len: u32,
    /// Length of the body that follows the head.
    pub body_len: u64,
    /// Monotonic per file, never reused; 0 for pads.
    pub seq: u64,
    /// When the request was sent upstream (unix seconds).
    pub requested: u64,
    /// When the response arrived (unix seconds).
    pub stored: u64,
    /// Unix seconds at which the object turns stale, 0 = unknown.
    pub expires: u64,
    /// CRC32 of key ++ head ++ body (a tombstone: of its key; a pad: 0).
    pub payload_crc: u32,
}

impl RecordHeader {
    /// A pad covering `total_len` bytes.
    pub fn pad(total_len: u32) -> RecordHeader {
        RecordHeader {
            kind: Kind::Pad,
            key_len: 0,
            head_len: 0,
            total_len,
            body_len: 0,
            seq: 0,
            requested: 0,
            stored: 0,
            expires: 0,
            payload_crc: 0,
        }
    }

    /// Bytes of key ++ head ++ body following the header. Cannot overflow for a header
    /// that [`decode_record_header`] accepted (they fit in `total_len`).
    pub fn payload_len(&self) -> u64 {
        u64::from(self.key_len)
            .saturating_add(u64::from(self.head_len))
            .saturating_add(self.body_len)
    }
}

/// Encodes the file header's 48 field bytes; bytes 48..4096 of the file are zero.
pub fn encode_file_header(h: &FileHeader) -> [u8; 48] {
    let mut b = [0u8; 48];
    b[0..8].copy_from_slice(&FILE_MAGIC);
    b[8..12].copy_from_slice(&h.version.to_le_bytes());
    b[12..16].copy_from_slice(&(FILE_HEADER_LEN as u32).to_le_bytes());
    b[16..24].copy_from_slice(&h.capacity.to_le_bytes());
    b[24..32].copy_from_slice(&h.file_id.to_le_bytes());
    b[32..40].copy_from_slice(&h.created.to_le_bytes());
    b[40..44].copy_from_slice(&(ALIGN as u32).to_le_bytes());
    let crc = crc32fast::hash(&b[0..44]);
    b[44..48].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a file header from the file's first bytes (at least 48 are needed).
///
/// A good magic with a version above [`VERSION`] is `Version` before anything else is
/// checked, since a newer format may lay out the rest differently. Otherwise the CRC,
/// the header length, the alignment, a capacity that is a multiple of [`ALIGN`] with
/// room for one record and at most [`MAX_CAPACITY`], and a non-zero file id must all
/// hold, or it is `NotACache`.
pub fn decode_file_header(bytes: &[u8]) -> Result<FileHeader, FileHeaderError> {
    let b: &[u8; 48] = bytes
        .get(..FILE_HEADER_FIELDS_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or(FileHeaderError::NotACache)?;
    if b[0..8] != FILE_MAGIC {
        return Err(FileHeaderError::NotACache);
    }
    let version = u32_at(b, 8);
    if version > VERSION {
        return Err(FileHeaderError::Version(version));
    }
    let crc_ok = crc32fast::hash(&b[0..44]) == u32_at(b, 44);
    let header = FileHeader {
        version,
        capacity: u64_at(b, 16),
        file_id: u64_at(b, 24),
        created: u64_at(b, 32),
    };
    let valid = crc_ok
        && version >= MIN_VERSION
        && u64::from(u32_at(b, 12)) == FILE_HEADER_LEN
        && u64::from(u32_at(b, 40)) == ALIGN
        && header.capacity.is_multiple_of(ALIGN)
        && header.capacity >= FILE_HEADER_LEN + RECORD_HEADER_LEN
        && header.capacity <= MAX_CAPACITY
        && header.file_id != 0;
    if valid {
        Ok(header)
    } else {
        Err(FileHeaderError::NotACache)
    }
}

/// What a checkpoint records: that every write made before it was taken reached the
/// disk, and where the writes after it may be. Recovery trusts the file as the
/// checkpoint describes it (see the `store` module's "Durability").
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Checkpoint {
    /// Counts up with every checkpoint; the valid slot with the higher count is current.
    pub counter: u64,
    /// The write cursor when it was taken: later writes start here...
    pub cursor: u64,
    /// ...and end before this offset (the *window* `[cursor, limit)`), apart from the
    /// bodies and headers of fills already begun and pads over dead records' headers.
    pub limit: u64,
    /// The next sequence number then: records numbered from here on are newer.
    pub next_seq: u64,
    /// The lowest sequence number of a fill then unfinished (`next_seq` if none): its
    /// header may be written after the checkpoint, outside the window.
    pub open_seq: u64,
}

/// Encodes a checkpoint slot, sealed with a CRC seeded by `file_id`.
pub fn encode_checkpoint(c: &Checkpoint, file_id: u64) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[0..4].copy_from_slice(&CHECKPOINT_MAGIC.to_le_bytes());
    b[8..16].copy_from_slice(&c.counter.to_le_bytes());
    b[16..24].copy_from_slice(&c.cursor.to_le_bytes());
    b[24..32].copy_from_slice(&c.limit.to_le_bytes());
    b[32..40].copy_from_slice(&c.next_seq.to_le_bytes());
    b[40..48].copy_from_slice(&c.open_seq.to_le_bytes());
    let crc = header_crc(&b, file_id);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a checkpoint slot of the file `file_id` whose data area is
/// `[FILE_HEADER_LEN, capacity)`: `None` unless the magic and CRC match, the reserved
/// bytes are zero, the window lies in the data area on [`ALIGN`] boundaries, and
/// `open_seq <= next_seq`.
pub fn decode_checkpoint(bytes: &[u8], file_id: u64, capacity: u64) -> Option<Checkpoint> {
    let b: &[u8; 64] = bytes.get(..64)?.try_into().ok()?;
    if u32_at(b, 0) != CHECKPOINT_MAGIC
        || b[4..8] != [0; 4]
        || b[48..60] != [0; 12]
        || header_crc(b, file_id) != u32_at(b, 60)
    {
        return None;
    }
    let c = Checkpoint {
        counter: u64_at(b, 8),
        cursor: u64_at(b, 16),
        limit: u64_at(b, 24),
        next_seq: u64_at(b, 32),
        open_seq: u64_at(b, 40),
    };
    let valid = FILE_HEADER_LEN <= c.cursor
        && c.cursor <= c.limit
        && c.limit <= capacity
        && c.cursor.is_multiple_of(ALIGN)
        && c.limit.is_multiple_of(ALIGN)
        && c.open_seq <= c.next_seq;
    valid.then_some(c)
}

/// The current checkpoint among the two slots of a file header page (`header`: the
/// file's first [`FILE_HEADER_LEN`] bytes, or fewer): the valid one with the higher
/// counter, if any.
pub fn current_checkpoint(header: &[u8], file_id: u64, capacity: u64) -> Option<Checkpoint> {
    CHECKPOINT_SLOTS
        .iter()
        .filter_map(|&at| {
            let at = usize::try_from(at).ok()?;
            decode_checkpoint(header.get(at..at.checked_add(64)?)?, file_id, capacity)
        })
        .max_by_key(|c| c.counter)
}

/// The slot a checkpoint with this counter is written to.
pub fn checkpoint_slot(counter: u64) -> u64 {
    CHECKPOINT_SLOTS[(counter % 2) as usize]
}

/// Encodes a record header, sealing it with a CRC seeded by `file_id`.
pub fn encode_record_header(h: &RecordHeader, file_id: u64) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
    b[4] = h.kind.code();
    b[5] = 0;
    b[6..8].copy_from_slice(&h.key_len.to_le_bytes());
    b[8..12].copy_from_slice(&h.head_len.to_le_bytes());
    b[12..16].copy_from_slice(&h.total_len.to_le_bytes());
    b[16..24].copy_from_slice(&h.body_len.to_le_bytes());
    b[24..32].copy_from_slice(&h.seq.to_le_bytes());
    b[32..40].copy_from_slice(&h.requested.to_le_bytes());
    b[40..48].copy_from_slice(&h.stored.to_le_bytes());
    b[48..56].copy_from_slice(&h.expires.to_le_bytes());
    b[56..60].copy_from_slice(&h.payload_crc.to_le_bytes());
    let crc = header_crc(&b, file_id);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes the record header at the start of `bytes`, or `None` if these bytes are not
/// a valid header of the file `file_id`.
///
/// `room`: bytes from this header's offset to the end of the data area. Accepted only
/// if the magic, kind, zero flags and header CRC match, `total_len` is a multiple of
/// [`ALIGN`], at least one header and at most `room`, the head is at most
/// [`MAX_HEAD_LEN`], header + key + head + body fit in `total_len`, and the kind's
/// unused fields are zero (a pad has no key, head, body or seq; a tombstone no head or
/// body).
pub fn decode_record_header(bytes: &[u8], file_id: u64, room: u64) -> Option<RecordHeader> {
    let b: &[u8; 64] = bytes.get(..64)?.try_into().ok()?;
    if u32_at(b, 0) != RECORD_MAGIC || b[5] != 0 || header_crc(b, file_id) != u32_at(b, 60) {
        return None;
    }
    let h = RecordHeader {
        kind: Kind::from_code(b[4])?,
        key_len: u16::from_le_bytes([b[6], b[7]]),
        head_len: u32_at(b, 8),
        total_len: u32_at(b, 12),
        body_len: u64_at(b, 16),
        seq: u64_at(b, 24),
        requested: u64_at(b, 32),
        stored: u64_at(b, 40),
        expires: u64_at(b, 48),
        payload_crc: u32_at(b, 56),
    };
    let total = u64::from(h.total_len);
    let used = RECORD_HEADER_LEN
        .checked_add(u64::from(h.key_len))?
        .checked_add(u64::from(h.head_len))?
        .checked_add(h.body_len)?;
    let shape_ok = match h.kind {
        Kind::Object => true,
        Kind::Tombstone => h.head_len == 0 && h.body_len == 0,
        Kind::Pad => used == RECORD_HEADER_LEN && h.seq == 0,
    };
    let valid = shape_ok
        && total.is_multiple_of(ALIGN)
        && total >= RECORD_HEADER_LEN
        && total <= room
        && u64::from(h.head_len) <= MAX_HEAD_LEN
        && used <= total;
    valid.then_some(h)
}

/// The aligned length of a record with these payload lengths, or `None` if it overflows
/// or exceeds [`MAX_RECORD_LEN`].
pub fn record_len(key_len: u64, head_len: u64, body_len: u64) -> Option<u64> {
    let used = RECORD_HEADER_LEN
        .checked_add(key_len)?
        .checked_add(head_len)?
        .checked_add(body_len)?;
    align_up(used).filter(|&len| len <= MAX_RECORD_LEN)
}

/// `n` rounded up to a multiple of [`ALIGN`], or `None` on overflow.
pub fn align_up(n: u64) -> Option<u64> {
    Some(n.checked_add(ALIGN - 1)? / ALIGN * ALIGN)
}

/// The recovery walk over a data area held in memory: yields `(offset within the area,
/// header)` for every valid record header, jumping a valid record's `total_len` and
/// resyncing by [`ALIGN`] over anything else. Offsets are relative to the slice, which
/// must start on an [`ALIGN`] boundary of the file (the data area does).
pub struct Walk<'a> {
    area: &'a [u8],
    file_id: u64,
    pos: u64,
    damaged: u64,
}

impl Walk<'_> {
    /// Bytes skipped so far that were neither a valid header nor zero (all-zero blocks
    /// are never-written space, not damage).
    pub fn damaged_bytes(&self) -> u64 {
        self.damaged
    }
}

impl Iterator for Walk<'_> {
    type Item = (u64, RecordHeader);

    fn next(&mut self) -> Option<(u64, RecordHeader)> {
        let len = self.area.len() as u64;
        loop {
            let room = len.checked_sub(self.pos)?;
            let start = usize::try_from(self.pos).ok()?;
            let block = self.area.get(start..start.checked_add(64)?)?;
            // Decoded from a copy: the CRC and the fields are then read from the same
            // bytes even if a writer changes the area meanwhile (a read-only open).
            let mut copy = [0u8; 64];
            copy.copy_from_slice(block);
            match decode_record_header(&copy, self.file_id, room) {
                Some(h) => {
                    let at = self.pos;
                    self.pos += u64::from(h.total_len);
                    return Some((at, h));
                }
                None => {
                    if copy.iter().any(|&x| x != 0) {
                        self.damaged += ALIGN;
                    }
                    self.pos += ALIGN;
                }
            }
        }
    }
}

/// Walks `area` (a data area, or any bytes) as the recovery scan does.
pub fn walk(area: &[u8], file_id: u64) -> Walk<'_> {
    Walk {
        area,
        file_id,
        pos: 0,
        damaged: 0,
    }
}

/// What the fuzz target calls: decodes a file header from `data` and walks the rest as
/// a data area (with the decoded file id, or 0); must never panic. Built only for the
/// unit tests and for fuzzing (cargo-fuzz sets `--cfg fuzzing`): the shipped library
/// has no use for it.
#[cfg(any(test, fuzzing))]
pub fn fuzz_decode(data: &[u8]) {
    let file_id = decode_file_header(data).map_or(0, |h| h.file_id);
    let _ = current_checkpoint(data, file_id, data.len() as u64);
    let area = data.get(FILE_HEADER_LEN as usize..).unwrap_or(&[]);
    for (off, h) in walk(area, file_id) {
        let _ = record_len(u64::from(h.key_len), u64::from(h.head_len), h.body_len);
        let _ = off.checked_add(u64::from(h.total_len));
    }
    let _ = decode_record_header(data, file_id, data.len() as u64);
}

/// The CRC of the file's id and the header's first 60 bytes, as one run: every hit
/// checks a header, and the id's eight bytes as an update of their own (the short
/// path of the CRC code, and a second call) cost as much as the other sixty.
fn header_crc(b: &[u8; 64], file_id: u64) -> u32 {
    let mut seeded = [0u8; 68];
    seeded[..8].copy_from_slice(&file_id.to_le_bytes());
    seeded[8..].copy_from_slice(&b[..60]);
    crc32fast::hash(&seeded)
}

fn u32_at<const N: usize>(b: &[u8; N], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at<const N: usize>(b: &[u8; N], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The CRC in one run is the CRC of the id, then the 60 bytes, which every
    /// header written so far carries.
    #[test]
    fn header_crc_is_the_crc_of_the_id_then_the_header() {
        let mut rng = XorShift(0x51ed_270b_9a1f_33c5);
        for _ in 0..1000 {
            let mut b = [0u8; 64];
            for x in b.iter_mut() {
                *x = rng.next() as u8;
            }
            let file_id = rng.next();
            let mut two = crc32fast::Hasher::new();
            two.update(&file_id.to_le_bytes());
            two.update(&b[0..60]);
            assert_eq!(header_crc(&b, file_id), two.finalize());
        }
    }

    /// A tiny deterministic RNG for the randomized tests.
    pub(crate) struct XorShift(pub u64);

    impl XorShift {
        pub(crate) fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        pub(crate) fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.next() as u8;
            }
        }
    }

    const ID: u64 = 0x1234_5678_9abc_def0;

    fn object(total_len: u32) -> RecordHeader {
        RecordHeader {
            kind: Kind::Object,
            key_len: 10,
            head_len: 20,
            total_len,
            body_len: 30,
            seq: 7,
            requested: 100,
            stored: 101,
            expires: 200,
            payload_crc: 0xdead_beef,
        }
    }

    fn file_header() -> FileHeader {
        FileHeader {
            version: VERSION,
            capacity: 1 << 20,
            file_id: ID,
            created: 1_700_000_000,
        }
    }

    #[test]
    fn file_header_round_trips() {
        let b = encode_file_header(&file_header());
        assert_eq!(decode_file_header(&b), Ok(file_header()));
        let mut long = vec![0u8; 4096];
        long[..48].copy_from_slice(&b);
        assert_eq!(decode_file_header(&long), Ok(file_header()));
    }

    #[test]
    fn file_header_rejects_damage_short_input_and_bad_fields() {
        let b = encode_file_header(&file_header());
        assert_eq!(
            decode_file_header(&b[..47]),
            Err(FileHeaderError::NotACache)
        );
        // Bytes 8..12 are the version: flipping one of their bits gives a newer version
        // (see the version test) or one below 1, not ours either.
        for i in (0..48).filter(|i| !(8..12).contains(i)) {
            let mut d = b;
            d[i] ^= 0x01;
            assert_eq!(
                decode_file_header(&d),
                Err(FileHeaderError::NotACache),
                "byte {i}"
            );
        }
        for capacity in [0, 4096, 4096 + 63, MAX_CAPACITY + ALIGN] {
            let h = FileHeader {
                capacity,
                ..file_header()
            };
            assert_eq!(
                decode_file_header(&encode_file_header(&h)),
                Err(FileHeaderError::NotACache)
            );
        }
        let zero_id = FileHeader {
            file_id: 0,
            ..file_header()
        };
        assert!(decode_file_header(&encode_file_header(&zero_id)).is_err());
    }

    #[test]
    fn newer_version_is_reported_even_with_another_layout() {
        let mut b = encode_file_header(&FileHeader {
            version: VERSION + 1,
            ..file_header()
        });
        assert_eq!(
            decode_file_header(&b),
            Err(FileHeaderError::Version(VERSION + 1))
        );
        b[44] ^= 0xff; // a newer layout need not have its CRC where ours is
        assert_eq!(
            decode_file_header(&b),
            Err(FileHeaderError::Version(VERSION + 1))
        );
    }

    #[test]
    fn a_version_1_file_header_is_still_read() {
        let v1 = FileHeader {
            version: 1,
            ..file_header()
        };
        assert_eq!(decode_file_header(&encode_file_header(&v1)), Ok(v1));
        let v0 = FileHeader {
            version: 0,
            ..file_header()
        };
        assert_eq!(
            decode_file_header(&encode_file_header(&v0)),
            Err(FileHeaderError::NotACache)
        );
    }

    fn checkpoint(counter: u64) -> Checkpoint {
        Checkpoint {
            counter,
            cursor: 8192,
            limit: 65536,
            next_seq: 40,
            open_seq: 38,
        }
    }

    #[test]
    fn checkpoints_round_trip_and_refuse_damage_other_files_and_bad_windows() {
        let cap = 1 << 20;
        let b = encode_checkpoint(&checkpoint(3), ID);
        assert_eq!(decode_checkpoint(&b, ID, cap), Some(checkpoint(3)));
        assert_eq!(decode_checkpoint(&b, ID ^ 1, cap), None);
        for bit in 0..64 * 8 {
            let mut d = b;
            d[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode_checkpoint(&d, ID, cap), None, "bit {bit}");
        }
        let bad = [
            Checkpoint {
                cursor: 100,
                ..checkpoint(1)
            },
            Checkpoint {
                cursor: 0,
                ..checkpoint(1)
            },
            Checkpoint {
                limit: 4096,
                ..checkpoint(1)
            },
            Checkpoint {
                limit: cap + 64,
                ..checkpoint(1)
            },
            Checkpoint {
                open_seq: 41,
                ..checkpoint(1)
            },
        ];
        for c in bad {
            assert_eq!(
                decode_checkpoint(&encode_checkpoint(&c, ID), ID, cap),
                None,
                "{c:?}"
            );
        }
        assert_eq!(decode_checkpoint(&b[..63], ID, cap), None);
    }

    #[test]
    fn the_valid_slot_with_the_higher_counter_is_current() {
        let cap = 1 << 20;
        let mut page = vec![0u8; FILE_HEADER_LEN as usize];
        assert_eq!(current_checkpoint(&page, ID, cap), None);
        let put = |page: &mut Vec<u8>, c: &Checkpoint| {
            let at = checkpoint_slot(c.counter) as usize;
            page[at..at + 64].copy_from_slice(&encode_checkpoint(c, ID));
        };
        put(&mut page, &checkpoint(6));
        put(&mut page, &checkpoint(7));
        assert_eq!(checkpoint_slot(6), CHECKPOINT_SLOTS[0]);
        assert_eq!(current_checkpoint(&page, ID, cap), Some(checkpoint(7)));
        // the newer slot torn: the older one is current
        page[checkpoint_slot(7) as usize + 20] ^= 1;
        assert_eq!(current_checkpoint(&page, ID, cap), Some(checkpoint(6)));
        assert_eq!(current_checkpoint(&page[..100], ID, cap), None);
    }

    #[test]
    fn record_header_round_trips_every_kind() {
        let tomb = RecordHeader {
            kind: Kind::Tombstone,
            head_len: 0,
            body_len: 0,
            ..object(128)
        };
        for h in [object(128), tomb, RecordHeader::pad(4096)] {
            let b = encode_record_header(&h, ID);
            assert_eq!(decode_record_header(&b, ID, 1 << 20), Some(h));
        }
    }

    #[test]
    fn record_header_rejects_any_flipped_bit_and_other_files() {
        let b = encode_record_header(&object(128), ID);
        assert_eq!(decode_record_header(&b, ID ^ 1, 1 << 20), None);
        for i in 0..64 {
            for bit in 0..8 {
                let mut d = b;
                d[i] ^= 1 << bit;
                assert_eq!(decode_record_header(&d, ID, 1 << 20), None, "{i}/{bit}");
            }
        }
    }

    #[test]
    fn record_header_rejects_lengths_that_do_not_fit() {
        let cases = [
            object(64),  // payload does not fit
            object(100), // not aligned
            object(0),
            RecordHeader {
                head_len: 65537,
                ..object(128 * 1024)
            },
            RecordHeader {
                body_len: u64::MAX,
                ..object(128)
            },
            RecordHeader {
                seq: 1,
                ..RecordHeader::pad(64)
            },
            RecordHeader {
                kind: Kind::Tombstone,
                ..object(128)
            },
        ];
        for h in cases {
            let b = encode_record_header(&h, ID);
            assert_eq!(decode_record_header(&b, ID, 1 << 20), None, "{h:?}");
        }
        let b = encode_record_header(&object(128), ID);
        assert_eq!(decode_record_header(&b, ID, 127), None);
        assert!(decode_record_header(&b, ID, 128).is_some());
        assert_eq!(decode_record_header(&b[..63], ID, 128), None);
    }

    #[test]
    fn record_len_aligns_and_checks_bounds() {
        assert_eq!(record_len(0, 0, 0), Some(64));
        assert_eq!(record_len(1, 0, 0), Some(128));
        assert_eq!(record_len(10, 20, 34), Some(128));
        assert_eq!(record_len(10, 20, 35), Some(192));
        assert_eq!(record_len(0, 0, MAX_RECORD_LEN - 64), Some(MAX_RECORD_LEN));
        assert_eq!(record_len(0, 0, MAX_RECORD_LEN - 63), None);
        assert_eq!(record_len(u64::MAX, 1, 1), None);
        assert_eq!(align_up(u64::MAX), None);
    }

    #[test]
    fn walk_finds_records_and_resyncs_over_garbage() {
        let mut area = vec![0u8; 64 * 20];
        let put = |area: &mut Vec<u8>, at: usize, h: RecordHeader| {
            area[at..at + 64].copy_from_slice(&encode_record_header(&h, ID));
        };
        put(&mut area, 0, object(128));
        area[128..192].fill(0xaa); // one damaged block
        put(&mut area, 192, RecordHeader::pad(256));
        // a foreign header (other file id) inside the pad is never looked at
        area[256..320].copy_from_slice(&encode_record_header(&object(128), 99));
        put(&mut area, 448, object(192));
        // a record claiming more than the area holds is garbage
        put(&mut area, 1152, object(256));
        let mut w = walk(&area, ID);
        let found: Vec<u64> = w.by_ref().map(|(off, _)| off).collect();
        assert_eq!(found, vec![0, 192, 448]);
        assert_eq!(w.damaged_bytes(), 128);
    }

    #[test]
    fn random_bytes_never_panic_the_decoders() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut buf = vec![0u8; 8192];
        for case in 0..3000 {
            let len = (rng.next() % 8192) as usize;
            let data = &mut buf[..len];
            rng.fill(data);
            if case % 3 == 0 && len >= 48 {
                // a valid file header in front of random records
                data[..48].copy_from_slice(&encode_file_header(&file_header()));
            }
            fuzz_decode(data);
            let room = rng.next();
            let _ = decode_record_header(data, ID, room);
            let _ = decode_file_header(data);
        }
    }

    #[test]
    fn sealed_headers_with_random_fields_decode_only_when_consistent() {
        let mut rng = XorShift(42);
        for _ in 0..5000 {
            let h = RecordHeader {
                kind: [Kind::Object, Kind::Tombstone, Kind::Pad][(rng.next() % 3) as usize],
                key_len: rng.next() as u16 % 300,
                head_len: (rng.next() % 70_000) as u32,
                total_len: (rng.next() % 200_000) as u32 & !7,
                body_len: rng.next() % 100_000,
                seq: rng.next() % 2,
                requested: rng.next(),
                stored: rng.next(),
                expires: rng.next(),
                payload_crc: rng.next() as u32,
            };
            let room = rng.next() % 300_000;
            let b = encode_record_header(&h, ID);
            if let Some(d) = decode_record_header(&b, ID, room) {
                assert_eq!(d, h);
                let total = u64::from(d.total_len);
                assert!(total.is_multiple_of(ALIGN) && total >= 64 && total <= room);
                assert!(64 + d.payload_len() <= total);
            }
        }
    }
}
