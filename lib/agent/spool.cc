#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "ringfence/agent.h"
#include "ringfence/status_macros.h"

namespace ringfence {
namespace {

constexpr size_t kMaxRecordBytes = 64 << 10;
constexpr size_t kHeaderBytes = 8;

// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven.
uint32_t Crc32c(absl::string_view data) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : data) crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutStr(std::string* out, absl::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out->append(s.data(), s.size());
}

struct Reader {
  absl::string_view in;
  bool ok = true;
  uint64_t Uint(int bytes) {
    if (in.size() < static_cast<size_t>(bytes)) {
      ok = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      v |= uint64_t{static_cast<unsigned char>(in[i])} << (8 * i);
    }
    in.remove_prefix(bytes);
    return v;
  }
  std::string Str() {
    const uint64_t n = Uint(4);
    if (!ok || in.size() < n) {
      ok = false;
      return "";
    }
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
};

std::string EncodeRecord(const SpooledEvent& e) {
  std::string payload;
  PutU64(&payload, e.seq);
  payload.push_back(static_cast<char>(e.event.type));
  PutU64(&payload, static_cast<uint64_t>(absl::ToUnixNanos(e.event.time)));
  payload.push_back(e.event.clean ? 1 : 0);
  PutU64(&payload, e.event.boot_id);
  PutU32(&payload, e.boot_count);
  PutStr(&payload, e.event_id);
  PutStr(&payload, e.event.host_id);
  PutStr(&payload, e.event.release_id);
  PutStr(&payload, e.event.signal);
  std::string out;
  PutU32(&out, static_cast<uint32_t>(payload.size()));
  PutU32(&out, Crc32c(payload));
  out += payload;
  return out;
}

// Parses the records of one segment up to the first bad one. Sets *clean if
// the whole file parsed.
std::vector<SpooledEvent> DecodeSegment(absl::string_view data, bool* clean) {
  std::vector<SpooledEvent> out;
  *clean = false;
  while (!data.empty()) {
    if (data.size() < kHeaderBytes) return out;
    Reader h{data.substr(0, kHeaderBytes)};
    const uint64_t len = h.Uint(4);
    const uint32_t crc = static_cast<uint32_t>(h.Uint(4));
    if (len > kMaxRecordBytes || data.size() - kHeaderBytes < len) return out;
    const absl::string_view payload = data.substr(kHeaderBytes, len);
    if (Crc32c(payload) != crc) return out;
    Reader r{payload};
    SpooledEvent e;
    e.seq = r.Uint(8);
    e.event.type = static_cast<EventType>(r.Uint(1));
    e.event.time = absl::FromUnixNanos(static_cast<int64_t>(r.Uint(8)));
    e.event.clean = r.Uint(1) != 0;
    e.event.boot_id = r.Uint(8);
    e.boot_count = static_cast<uint32_t>(r.Uint(4));
    if (e.event.type == EventType::kBoot) {
      e.event.boots_since_apply = e.boot_count;
    }
    e.event_id = r.Str();
    e.event.host_id = r.Str();
    e.event.release_id = r.Str();
    e.event.signal = r.Str();
    if (!r.ok || !r.in.empty()) return out;
    out.push_back(std::move(e));
    data.remove_prefix(kHeaderBytes + len);
  }
  *clean = true;
  return out;
}

bool ParseSegmentName(absl::string_view name, uint64_t* first) {
  return absl::ConsumePrefix(&name, "seg-") &&
         absl::ConsumeSuffix(&name, ".log") && absl::SimpleAtoi(name, first);
}

std::string SegmentName(uint64_t first) {
  return absl::StrFormat("seg-%020d.log", first);
}

// The acknowledgement cursor (agent.h, EventSpool): two slots in place.
constexpr size_t kCursorSlotBytes = 32;
constexpr uint64_t kCursorSlotSpacing = 4096;

std::string EncodeCursorSlot(uint64_t generation, const SpoolCursor& c) {
  std::string out;
  PutU64(&out, generation);
  PutU64(&out, c.acked);
  PutU64(&out, c.dropped);
  PutU32(&out, Crc32c(out));
  PutU32(&out, 0);
  return out;
}

uint64_t CursorSlotOffset(uint64_t generation) {
  return ((generation - 1) % 2) * kCursorSlotSpacing;
}

struct LoadedCursor {
  SpoolCursor cursor;
  uint64_t generation = 0;  // 0: no valid slot
  bool legacy_ack = false;  // `ack` exists
};

// The pre-slot cursor: "<acked> <dropped>\n", written atomically.
absl::StatusOr<SpoolCursor> ParseLegacyAck(const std::string& path,
                                           absl::string_view text) {
  SpoolCursor c;
  std::vector<absl::string_view> parts =
      absl::StrSplit(absl::StripAsciiWhitespace(text), ' ');
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &c.acked) ||
      !absl::SimpleAtoi(parts[1], &c.dropped)) {
    // Written atomically, so this is not a torn write: refuse to guess.
    return absl::DataLossError(absl::StrCat(path, ": malformed"));
  }
  return c;
}

absl::StatusOr<LoadedCursor> LoadCursor(AgentFileSystem* fs,
                                        const std::string& dir) {
  LoadedCursor out;
  const std::string path = dir + "/cursor";
  absl::StatusOr<std::string> data = fs->ReadFile(path);
  if (!data.ok() && !absl::IsNotFound(data.status())) return data.status();
  if (data.ok()) {
    for (uint64_t slot = 0; slot < 2; ++slot) {
      const uint64_t at = slot * kCursorSlotSpacing;
      if (data->size() < at + kCursorSlotBytes) break;
      Reader r{absl::string_view(*data).substr(at, kCursorSlotBytes)};
      const uint64_t generation = r.Uint(8);
      SpoolCursor c;
      c.acked = r.Uint(8);
      c.dropped = r.Uint(8);
      const uint32_t crc = static_cast<uint32_t>(r.Uint(4));
      if (generation == 0 || CursorSlotOffset(generation) != at ||
          crc != Crc32c(absl::string_view(*data).substr(at, 24)) ||
          generation <= out.generation) {
        continue;
      }
      out.generation = generation;
      out.cursor = c;
    }
    if (out.generation == 0 &&
        data->size() >= kCursorSlotSpacing + kCursorSlotBytes) {
      // Both slots were written whole once: one crash tears at most one.
      return absl::DataLossError(
          absl::StrCat(path, ": neither slot passes its CRC"));
    }
  }
  absl::StatusOr<std::string> legacy = fs->ReadFile(dir + "/ack");
  if (absl::IsNotFound(legacy.status())) return out;
  // Removed after the next cursor write, which supersedes it.
  out.legacy_ack = true;
  if (out.generation > 0) return out;  // a valid cursor wins
  RETURN_IF_ERROR(legacy.status());
  ASSIGN_OR_RETURN(out.cursor, ParseLegacyAck(dir + "/ack", *legacy));
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventSpool>> EventSpool::Open(
    AgentFileSystem* fs, const std::string& dir, SpoolOptions options) {
  if (options.segment_bytes == 0 ||
      options.max_bytes < 2 * options.segment_bytes) {
    return absl::InvalidArgumentError(
        "spool: max_bytes must be at least 2 * segment_bytes");
  }
  std::unique_ptr<EventSpool> spool(new EventSpool(fs, dir, options));
  RETURN_IF_ERROR(fs->MakeDirs(dir));
  RETURN_IF_ERROR(spool->Recover());
  return spool;
}

absl::Status EventSpool::Recover() {
  ASSIGN_OR_RETURN(LoadedCursor loaded, LoadCursor(fs_, dir_));
  acked_ = loaded.cursor.acked;
  dropped_ = loaded.cursor.dropped;
  cursor_generation_ = loaded.generation;
  legacy_ack_ = loaded.legacy_ack;
  next_seq_ = acked_ + 1;
  ASSIGN_OR_RETURN(std::vector<std::string> names, fs_->List(dir_));
  std::vector<std::pair<uint64_t, std::string>> segs;
  for (const std::string& name : names) {
    uint64_t first = 0;
    if (ParseSegmentName(name, &first)) segs.emplace_back(first, name);
    // An older agent's interrupted cursor write.
    if (name == "ack.tmp") legacy_ack_ = true;
  }
  std::sort(segs.begin(), segs.end());
  bool last_clean = false;
  for (const auto& [first, name] : segs) {
    ASSIGN_OR_RETURN(std::string data, fs_->ReadFile(dir_ + "/" + name));
    bool clean = false;
    std::vector<SpooledEvent> records = DecodeSegment(data, &clean);
    Segment seg{name, first, 0, data.size()};
    for (SpooledEvent& e : records) {
      if (e.seq <= acked_) {
        seg.last_seq = std::max(seg.last_seq, e.seq);
        continue;
      }
      if (!pending_.empty() && e.seq <= pending_.back().seq) continue;
      seg.last_seq = e.seq;
      next_seq_ = std::max(next_seq_, e.seq + 1);
      pending_.push_back(std::move(e));
    }
    // A segment's name promises its first seq; never reuse it.
    next_seq_ = std::max(next_seq_, first + 1);
    segments_.push_back(seg);
    last_clean = clean;
  }
  tail_open_ = !segments_.empty() && last_clean &&
               segments_.back().bytes < options_.segment_bytes;
  return RemoveAckedSegments();
}

absl::Status EventSpool::WriteCursor(uint64_t acked, uint64_t dropped) {
  const uint64_t generation = cursor_generation_ + 1;
  RETURN_IF_ERROR(fs_->WriteAtDurably(
      dir_ + "/cursor", CursorSlotOffset(generation),
      EncodeCursorSlot(generation, SpoolCursor{acked, dropped})));
  cursor_generation_ = generation;
  acked_ = acked;
  dropped_ = dropped;
  if (legacy_ack_) {
    // The cursor supersedes the old format's files from now on; one left
    // behind (a failed remove, tried again after the next write) is
    // harmless: a valid cursor wins over it.
    legacy_ack_ = !(fs_->Remove(dir_ + "/ack").ok() &&
                    fs_->Remove(dir_ + "/ack.tmp").ok());
  }
  return absl::OkStatus();
}

absl::Status EventSpool::RemoveAckedSegments() {
  // Every segment but the open tail whose records are all acknowledged.
  while (!segments_.empty()) {
    const Segment& s = segments_.front();
    const bool is_tail = segments_.size() == 1 && tail_open_;
    const uint64_t last = s.last_seq == 0 ? s.first_seq : s.last_seq;
    if (is_tail || last > acked_) break;
    // A segment created empty (a crash right after the name was chosen)
    // holds nothing; its first_seq may exceed acked_ only if it has records.
    RETURN_IF_ERROR(fs_->Remove(dir_ + "/" + s.name));
    segments_.pop_front();
  }
  return absl::OkStatus();
}

size_t EventSpool::bytes() const {
  size_t n = 0;
  for (const Segment& s : segments_) n += s.bytes;
  return n;
}

absl::Status EventSpool::DropOldest() {
  const Segment& s = segments_.front();
  const uint64_t last = s.last_seq == 0 ? s.first_seq : s.last_seq;
  uint64_t lost = 0;
  while (!pending_.empty() && pending_.front().seq <= last) {
    pending_.pop_front();
    ++lost;
  }
  // The cursor first: a crash before the remove leaves a segment that
  // recovery knows to be consumed.
  RETURN_IF_ERROR(WriteCursor(std::max(acked_, last), dropped_ + lost));
  RETURN_IF_ERROR(fs_->Remove(dir_ + "/" + s.name));
  segments_.pop_front();
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> EventSpool::Append(const std::string& event_id,
                                            const TelemetryEvent& event,
                                            uint32_t boot_count) {
  SpooledEvent e{next_seq_, event_id, event, boot_count};
  const std::string record = EncodeRecord(e);
  if (record.size() - kHeaderBytes > kMaxRecordBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("spool: event ", event_id, " exceeds 64 KiB"));
  }
  // The seq is consumed whatever happens: a failed append may still have
  // reached the disk.
  ++next_seq_;
  if (!tail_open_ ||
      segments_.back().bytes + record.size() > options_.segment_bytes) {
    segments_.push_back(Segment{SegmentName(e.seq), e.seq, 0, 0});
    tail_open_ = true;
  }
  while (bytes() + record.size() > options_.max_bytes && segments_.size() > 1) {
    RETURN_IF_ERROR(DropOldest());
  }
  Segment& tail = segments_.back();
  absl::Status s = fs_->AppendDurably(dir_ + "/" + tail.name, record);
  if (!s.ok()) {
    // The tail may now end in a torn record: never append after it.
    tail_open_ = false;
    tail.bytes += record.size();  // at most
    return s;
  }
  tail.bytes += record.size();
  tail.last_seq = e.seq;
  pending_.push_back(std::move(e));
  return pending_.back().seq;
}

std::vector<SpooledEvent> EventSpool::Pending(size_t max) const {
  std::vector<SpooledEvent> out;
  for (size_t i = 0; i < pending_.size() && i < max; ++i) {
    out.push_back(pending_[i]);
  }
  return out;
}

absl::Status EventSpool::Ack(uint64_t seq) {
  if (seq <= acked_) return absl::OkStatus();
  RETURN_IF_ERROR(WriteCursor(seq, dropped_));
  while (!pending_.empty() && pending_.front().seq <= seq) pending_.pop_front();
  return RemoveAckedSegments();
}

absl::StatusOr<std::vector<SpooledEvent>> EventSpool::ReadAll(
    AgentFileSystem* fs, const std::string& dir) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, fs->List(dir));
  std::vector<std::pair<uint64_t, std::string>> segs;
  for (const std::string& name : names) {
    uint64_t first = 0;
    if (ParseSegmentName(name, &first)) segs.emplace_back(first, name);
  }
  std::sort(segs.begin(), segs.end());
  std::vector<SpooledEvent> out;
  for (const auto& [first, name] : segs) {
    ASSIGN_OR_RETURN(std::string data, fs->ReadFile(dir + "/" + name));
    bool clean = false;
    for (SpooledEvent& e : DecodeSegment(data, &clean)) {
      out.push_back(std::move(e));
    }
  }
  return out;
}

absl::StatusOr<SpoolCursor> EventSpool::ReadCursor(AgentFileSystem* fs,
                                                   const std::string& dir) {
  ASSIGN_OR_RETURN(LoadedCursor loaded, LoadCursor(fs, dir));
  return loaded.cursor;
}

}  // namespace ringfence
