// Verilator testbench of a codesign top-level (hwmodel/rtl/verilator.py builds and runs it).
//
// The top (Verilator prefix Vtop) has the layer sequencer's ports: an AXI4-Lite slave s_* and
// one AXI4 master m_* with a read and a write channel. This testbench is
//   * the host: writes PROG_BASE_LO, PROG_BASE_HI, then CTRL start over AXI4-Lite, polls STATUS
//     until done or error, then reads OPS_DONE, CYCLES_LO, CYCLES_HI (as
//     codesign/program/driver.py does; one command at a time, exactly the Python reference
//     hwmodel.rtl.verilator.simulate_top);
//   * the DRAM: hwmodel.rtl.dram.Dram's semantics on a byte image, cycle for cycle (latency,
//     bandwidth cap per channel, in-order beats held until rready, strobed writes, a response
//     latency cycles after a burst's last beat or its address, whichever is later).
//
// Usage: codesign_tb IMAGE_IN PROGRAM_BASE IMAGE_OUT RESULT_JSON DATA_BITS LATENCY_CYCLES
//                    BYTES_PER_CYCLE(0: no cap) MAX_CYCLES
// Register offsets come from -D defines (CODESIGN_REG_*, CODESIGN_STATUS_*, CODESIGN_CTRL_START).
// Exit status: 0 finished (done or error), 2 timed out, 3 DRAM fault, 1 usage/IO error; the
// result JSON is written in every case but 1.

#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

namespace {

// ---- signals of any width: Verilator's CData/SData/IData/QData or VlWide<N>
template <typename T>
void put_bytes(T& sig, const uint8_t* p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = v << 8 | p[i];
    sig = static_cast<T>(v);
}
template <std::size_t N>
void put_bytes(VlWide<N>& sig, const uint8_t* p, size_t n) {
    for (std::size_t w = 0; w < N; ++w) {
        uint32_t v = 0;
        for (int b = 3; b >= 0; --b) {
            size_t i = w * 4 + b;
            v = v << 8 | (i < n ? p[i] : 0);
        }
        sig[w] = v;
    }
}
template <typename T>
void clear(T& sig) {
    sig = 0;
}
template <std::size_t N>
void clear(VlWide<N>& sig) {
    for (std::size_t w = 0; w < N; ++w) sig[w] = 0;
}
template <typename T>
uint8_t byte_of(const T& sig, size_t j) {
    return static_cast<uint8_t>(static_cast<uint64_t>(sig) >> (8 * j));
}
template <std::size_t N>
uint8_t byte_of(const VlWide<N>& sig, size_t j) {
    return static_cast<uint8_t>(sig[j / 4] >> (8 * (j % 4)));
}
template <typename T>
bool bit_of(const T& sig, size_t j) {
    return (static_cast<uint64_t>(sig) >> j) & 1;
}
template <std::size_t N>
bool bit_of(const VlWide<N>& sig, size_t j) {
    return (sig[j / 32] >> (j % 32)) & 1;
}

struct Fault {
    std::string what;
};

// ---- hwmodel.rtl.dram.Dram, one port with a read and a write channel
class Dram {
  public:
    Dram(std::vector<uint8_t>& image, size_t beat_bytes, uint64_t latency, double bytes_per_cycle)
        : image_(image), beat_(beat_bytes), latency_(latency), bpc_(bytes_per_cycle) {}

    bool allowed(uint64_t k, uint64_t cycle) const {
        if (bpc_ <= 0) return true;
        double at = std::ceil(static_cast<double>((k + 1) * beat_) / bpc_);
        return static_cast<double>(cycle) >= at;
    }
    const uint8_t* bytes(uint64_t addr, size_t n) const {
        if (addr + n > image_.size()) {
            char msg[160];
            std::snprintf(msg, sizeof msg, "DRAM access 0x%" PRIx64 "+%zu outside the %zu-byte image", addr,
                          n, image_.size());
            throw Fault{msg};
        }
        return image_.data() + addr;
    }
    bool offered(uint64_t cycle) const {
        return !reads_.empty() && cycle >= reads_.front().from && allowed(read_beats, cycle);
    }

    void inputs(Vtop* top, uint64_t cycle) {
        top->m_arready = 1;
        top->m_rvalid = 0;
        top->m_rlast = 0;
        clear(top->m_rdata);
        if (offered(cycle)) {
            const Beat& b = reads_.front();
            put_bytes(top->m_rdata, bytes(b.addr, beat_), beat_);
            top->m_rvalid = 1;
            top->m_rlast = b.last;
        }
        top->m_awready = 1;
        top->m_wready = allowed(write_beats, cycle);
        while (!answers_.empty() && answers_.front() < cycle) answers_.pop_front();
        top->m_bvalid = !answers_.empty() && answers_.front() == cycle;
    }

    void observe(Vtop* top, uint64_t cycle) {
        if (offered(cycle) && top->m_rready) {
            reads_.pop_front();
            ++read_beats;
        }
        if (top->m_arvalid) {
            uint64_t addr = top->m_araddr, n = static_cast<uint64_t>(top->m_arlen) + 1;
            ++read_bursts;
            for (uint64_t i = 0; i < n; ++i) reads_.push_back({cycle + latency_, addr + i * beat_, i == n - 1});
        }
        if (top->m_awvalid) {
            writes_.push_back({static_cast<uint64_t>(top->m_awaddr), static_cast<uint64_t>(top->m_awlen) + 1,
                               cycle});
        }
        if (!(top->m_wvalid && allowed(write_beats, cycle))) return;
        char msg[160];
        if (burst_ >= writes_.size()) {
            std::snprintf(msg, sizeof msg, "m_: write data before its address at cycle %" PRIu64, cycle);
            throw Fault{msg};
        }
        const Burst& w = writes_[burst_];
        uint64_t at = w.addr + beat_in_burst_ * beat_;
        bytes(at, beat_);  // bounds
        for (size_t j = 0; j < beat_; ++j) {
            if (bit_of(top->m_wstrb, j)) image_[at + j] = byte_of(top->m_wdata, j);
        }
        if (static_cast<bool>(top->m_wlast) != (beat_in_burst_ == w.beats - 1)) {
            std::snprintf(msg, sizeof msg, "m_: wlast wrong at beat %" PRIu64 " of burst %zu (cycle %" PRIu64 ")",
                          beat_in_burst_, burst_, cycle);
            throw Fault{msg};
        }
        ++beat_in_burst_;
        ++write_beats;
        if (beat_in_burst_ == w.beats) {
            answers_.push_back(std::max(cycle, w.aw_cycle) + latency_);
            ++burst_;
            beat_in_burst_ = 0;
        }
    }

    uint64_t read_beats = 0, write_beats = 0, read_bursts = 0;
    size_t write_bursts() const { return writes_.size(); }

  private:
    struct Beat {
        uint64_t from, addr;
        bool last;
    };
    struct Burst {
        uint64_t addr, beats, aw_cycle;
    };
    std::vector<uint8_t>& image_;
    size_t beat_;
    uint64_t latency_;
    double bpc_;
    std::deque<Beat> reads_;
    std::vector<Burst> writes_;
    size_t burst_ = 0;
    uint64_t beat_in_burst_ = 0;
    std::deque<uint64_t> answers_;
};

struct Cmd {
    bool write;
    uint32_t offset, value;
};

bool read_file(const char* path, std::vector<uint8_t>& out) {
    FILE* f = std::fopen(path, "rb");
    if (!f) return false;
    std::fseek(f, 0, SEEK_END);
    long n = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    out.resize(static_cast<size_t>(n));
    bool ok = n == 0 || std::fread(out.data(), 1, out.size(), f) == out.size();
    std::fclose(f);
    return ok;
}

bool write_file(const char* path, const std::vector<uint8_t>& data) {
    FILE* f = std::fopen(path, "wb");
    if (!f) return false;
    bool ok = data.empty() || std::fwrite(data.data(), 1, data.size(), f) == data.size();
    return std::fclose(f) == 0 && ok;
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 9) {
        std::fprintf(stderr,
                     "usage: %s IMAGE_IN PROGRAM_BASE IMAGE_OUT RESULT_JSON DATA_BITS LATENCY BYTES_PER_CYCLE "
                     "MAX_CYCLES\n",
                     argv[0]);
        return 1;
    }
    std::vector<uint8_t> image;
    if (!read_file(argv[1], image)) {
        std::fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    const uint64_t base = std::strtoull(argv[2], nullptr, 0);
    const size_t data_bits = std::strtoull(argv[5], nullptr, 0);
    const uint64_t latency = std::strtoull(argv[6], nullptr, 0);
    const double bytes_per_cycle = std::strtod(argv[7], nullptr);
    const uint64_t max_cycles = std::strtoull(argv[8], nullptr, 0);

    auto context = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vtop>(context.get());
    if (sizeof(top->m_rdata) * 8 != data_bits) {
        std::fprintf(stderr, "data_bits %zu does not match m_rdata\n", data_bits);
        return 1;
    }
    Dram dram(image, data_bits / 8, latency, bytes_per_cycle);

    std::deque<Cmd> host = {{true, CODESIGN_REG_PROG_BASE_LO, static_cast<uint32_t>(base)},
                            {true, CODESIGN_REG_PROG_BASE_HI, static_cast<uint32_t>(base >> 32)},
                            {true, CODESIGN_REG_CTRL, CODESIGN_CTRL_START}};
    long pending = -1;
    bool finished = false;
    uint32_t status = 0, ops_done = 0, cycles_lo = 0, cycles_hi = 0;
    int64_t start_cycle = -1, done_cycle = -1;
    uint64_t cycle = 0;
    std::string fault;
    int rc = 2;

    top->clk = 0;
    top->rst = 0;
    auto t0 = std::chrono::steady_clock::now();
    try {
        for (; cycle < max_cycles; ++cycle) {
            top->s_awvalid = 0;
            top->s_awaddr = 0;
            top->s_wvalid = 0;
            top->s_wdata = 0;
            top->s_bready = 1;
            top->s_arvalid = 0;
            top->s_araddr = 0;
            top->s_rready = 1;
            if (!host.empty() && pending < 0) {
                const Cmd& c = host.front();
                if (c.write) {
                    top->s_awvalid = 1;
                    top->s_awaddr = c.offset;
                    top->s_wvalid = 1;
                    top->s_wdata = c.value;
                } else {
                    top->s_arvalid = 1;
                    top->s_araddr = c.offset;
                }
            }
            dram.inputs(top.get(), cycle);
            top->clk = 0;
            top->eval();
            dram.observe(top.get(), cycle);
            bool stop = false;
            if (!host.empty() && pending < 0) {
                Cmd c = host.front();
                if (c.write && top->s_awready) {
                    host.pop_front();
                    if (c.offset == CODESIGN_REG_CTRL) {
                        start_cycle = static_cast<int64_t>(cycle);
                        host.push_back({false, CODESIGN_REG_STATUS, 0});
                    }
                } else if (!c.write && top->s_arready) {
                    pending = c.offset;
                    host.pop_front();
                }
            } else if (pending >= 0 && top->s_rvalid) {
                uint32_t value = top->s_rdata;
                if (pending == CODESIGN_REG_STATUS) {
                    status = value;
                    if (value & (CODESIGN_STATUS_DONE | CODESIGN_STATUS_ERROR)) {
                        host.push_back({false, CODESIGN_REG_OPS_DONE, 0});
                        host.push_back({false, CODESIGN_REG_CYCLES_LO, 0});
                        host.push_back({false, CODESIGN_REG_CYCLES_HI, 0});
                        finished = true;
                        done_cycle = static_cast<int64_t>(cycle);
                    } else {
                        host.push_back({false, CODESIGN_REG_STATUS, 0});
                    }
                } else if (pending == CODESIGN_REG_OPS_DONE) {
                    ops_done = value;
                } else if (pending == CODESIGN_REG_CYCLES_LO) {
                    cycles_lo = value;
                } else if (pending == CODESIGN_REG_CYCLES_HI) {
                    cycles_hi = value;
                }
                pending = -1;
                stop = finished && host.empty();
            }
            top->clk = 1;
            top->eval();
            if (stop) {
                ++cycle;
                rc = 0;
                break;
            }
        }
    } catch (const Fault& f) {
        fault = f.what;
        rc = 3;
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    top->final();
    if (!write_file(argv[3], image)) {
        std::fprintf(stderr, "cannot write %s\n", argv[3]);
        return 1;
    }
    FILE* f = std::fopen(argv[4], "w");
    if (!f) return 1;
    std::fprintf(f,
                 "{\"status\": %u, \"ops_done\": %u, \"cycles_register\": %" PRIu64 ", \"start_cycle\": %" PRId64
                 ", \"done_cycle\": %" PRId64 ", \"cycles\": %" PRIu64
                 ", \"timed_out\": %s, \"fault\": %s, \"read_beats\": %" PRIu64 ", \"write_beats\": %" PRIu64
                 ", \"read_bursts\": %" PRIu64 ", \"write_bursts\": %zu, \"sim_seconds\": %.6f}\n",
                 status, ops_done, static_cast<uint64_t>(cycles_hi) << 32 | cycles_lo, start_cycle, done_cycle,
                 cycle, rc == 2 ? "true" : "false", fault.empty() ? "null" : json_string(fault).c_str(),
                 dram.read_beats, dram.write_beats, dram.read_bursts, dram.write_bursts(), seconds);
    std::fclose(f);
    return rc;
}
