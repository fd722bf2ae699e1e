// torch_shim.cpp — TorchScript models for the C engines, over LibTorch.
//
// Built as atheria_core._torch_shim (a plain shared object with no PyInit:
// the extension dlopen()s it, see src/python/py_torch.c).  Implements the
// extern "C" surface of include/atheria/torch_shim.h and the ath_model vtable
// of include/atheria/model.h.  The file contract is docs/torchscript.md.
//
// Rules kept here:
//  * no C++ exception leaves an extern "C" function or a vtable entry;
//  * no Python: forward runs without the GIL;
//  * self-contained: it does not call into _core (which the loader opens
//    RTLD_LOCAL), so errors are written into ath_error directly.
#include "atheria/torch_shim.h"

#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/version.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

namespace {

// ---------------------------------------------------------------------------
// Error reporting
// ---------------------------------------------------------------------------

__attribute__((format(printf, 3, 4))) ath_status set_error(ath_error *err, ath_status code,
                                                           const char *fmt, ...) noexcept {
    if (err != nullptr) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        std::vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

// An error raised inside the TorchScript interpreter carries the script
// traceback first and the actual error last ("RuntimeError: Given groups=1,
// ..."): keep the error, then where it happened (the first 'File "...",
// line N, in f' of the serialized code).
std::string interpreter_summary(const std::string &s) {
    std::vector<std::string> lines;
    size_t start = 0;
    while (start <= s.size()) {
        size_t end = s.find('\n', start);
        if (end == std::string::npos) end = s.size();
        lines.push_back(s.substr(start, end - start));
        start = end + 1;
    }
    size_t err_line = lines.size();
    for (size_t i = lines.size(); i-- > 0;) {
        const std::string &l = lines[i];
        const size_t colon = l.find(": ");
        if (colon != std::string::npos && colon > 0 && l[0] != ' ' &&
            (l.compare(0, colon, "Error") == 0 || (colon >= 5 && l.compare(colon - 5, 5, "Error") == 0) ||
             (colon >= 9 && l.compare(colon - 9, 9, "Exception") == 0))) {
            err_line = i;
            break;
        }
    }
    if (err_line == lines.size()) return s;
    std::string out;
    for (size_t i = err_line; i < lines.size(); ++i) {
        if (!out.empty()) out += ' ';
        out += lines[i];
    }
    for (const std::string &l : lines) {
        const size_t f = l.find("File \"");
        if (f != std::string::npos) {
            out += " [at " + l.substr(f) + "]";
            break;
        }
    }
    return out;
}

// LibTorch's message made fit for one line of an ath_error: the enforce
// prefix and miniz boilerplate dropped, whitespace runs collapsed, bounded.
std::string clean_message(const char *what) {
    std::string s(what != nullptr ? what : "");
    if (s.find("Traceback of TorchScript") != std::string::npos) s = interpreter_summary(s);
    if (s.rfind("[enforce fail at", 0) == 0) {
        const size_t p = s.find("] . ");
        if (p != std::string::npos) s.erase(0, p + 4);
    }
    const size_t boiler = s.find(" This is an internal miniz error");
    if (boiler != std::string::npos) s.erase(boiler);
    std::string out;
    out.reserve(s.size());
    bool space = false;
    for (char ch : s) {
        if (ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ') {
            space = true;
            continue;
        }
        if (space && !out.empty()) out.push_back(' ');
        space = false;
        out.push_back(ch);
    }
    constexpr size_t kMax = 360;
    if (out.size() > kMax) out = out.substr(0, kMax - 3) + "...";
    return out;
}

std::string shape_string(const c10::IntArrayRef sizes) {
    std::string s = "[";
    for (size_t i = 0; i < sizes.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(sizes[i]);
    }
    return s + "]";
}

std::string shape_string(const int64_t shape[4]) {
    return shape_string(c10::IntArrayRef(shape, 4));
}

std::string shape_string(const std::vector<int64_t> &shape) {
    return shape_string(c10::IntArrayRef(shape));
}

void set_kind(int *kind, ath_load_error k) noexcept {
    if (kind != nullptr) *kind = static_cast<int>(k);
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

struct TorchModel {
    TorchModel(torch::jit::Module m, c10::Device d, bool mem, int64_t ch, std::string p)
        : module(std::move(m)), device(d), memory(mem), channels(ch), path(std::move(p)) {}

    torch::jit::Module module;
    c10::Device device;
    bool memory;
    int64_t channels;
    std::string path;

    std::mutex mu;  // serialises forward and the memory operations
    // Memory models: (h, c) committed by the last successful step, and the
    // pending (h', c') computed by the last forward, not yet committed.
    bool have_committed = false;
    bool have_pending = false;
    torch::Tensor h, c, h_pending, c_pending;
    std::vector<int64_t> mem_shape, mem_shape_pending;  // input shape the memory belongs to
    // Memory restored from a snapshot (h then c, flattened), waiting for the next
    // forward, where init_memory(x) gives the shapes it is poured into.
    std::vector<float> restored;

    void drop_pending() {
        have_pending = false;
        h_pending = torch::Tensor();
        c_pending = torch::Tensor();
        mem_shape_pending.clear();
    }
};

std::string ivalue_kind(const c10::IValue &v) {
    return v.tagKind();
}

// Pours m.restored into tensors shaped like init_memory's (h0, c0): the
// committed memory becomes the snapshot's.  False (err set) on a size mismatch.
bool restore_memory(TorchModel &m, const torch::Tensor &h0, const torch::Tensor &c0, ath_error *err) {
    const int64_t nh = h0.numel(), nc = c0.numel();
    if (nh + nc != static_cast<int64_t>(m.restored.size())) {
        set_error(err, ATH_ERR_MODEL,
                  "TorchScript model '%s': restored memory has %zu floats, init_memory gives %lld + %lld",
                  m.path.c_str(), m.restored.size(), static_cast<long long>(nh), static_cast<long long>(nc));
        return false;
    }
    auto opts = torch::TensorOptions().dtype(torch::kFloat32);
    m.h = torch::from_blob(m.restored.data(), h0.sizes(), opts).clone().to(h0.device(), h0.scalar_type());
    m.c = torch::from_blob(m.restored.data() + nh, c0.sizes(), opts).clone().to(c0.device(), c0.scalar_type());
    m.restored.clear();
    return true;
}

// Runs the module on x; returns the delta and, for memory models, stores the
// next memory as pending.  Throws c10::Error / std::exception; returns false
// with err set on a contract violation.
bool run_model(TorchModel &m, const torch::Tensor &x, torch::Tensor &delta, ath_error *err) {
    if (!m.memory) {
        c10::IValue r = m.module.forward({x});
        if (!r.isTensor()) {
            set_error(err, ATH_ERR_MODEL, "TorchScript model '%s': forward returned a %s, expected a Tensor",
                      m.path.c_str(), ivalue_kind(r).c_str());
            return false;
        }
        delta = r.toTensor();
        return true;
    }
    torch::Tensor h, c;
    if (m.have_committed) {
        if (!x.sizes().equals(m.mem_shape)) {
            set_error(err, ATH_ERR_MODEL,
                      "TorchScript model '%s': the memory (h, c) belongs to inputs of shape %s, got %s; "
                      "reset the memory first",
                      m.path.c_str(), shape_string(m.mem_shape).c_str(), shape_string(x.sizes()).c_str());
            return false;
        }
        h = m.h;
        c = m.c;
    } else {
        c10::IValue mem = m.module.get_method("init_memory")({x});
        if (!m.restored.empty() && mem.isTuple() && mem.toTupleRef().elements().size() == 2 &&
            mem.toTupleRef().elements()[0].isTensor() && mem.toTupleRef().elements()[1].isTensor()) {
            torch::Tensor h0 = mem.toTupleRef().elements()[0].toTensor();
            torch::Tensor c0 = mem.toTupleRef().elements()[1].toTensor();
            if (!restore_memory(m, h0, c0, err)) return false;
            mem = c10::ivalue::Tuple::create({m.h, m.c});
            m.mem_shape = x.sizes().vec();
            m.have_committed = true;
        }
        if (!mem.isTuple() || mem.toTupleRef().elements().size() != 2 ||
            !mem.toTupleRef().elements()[0].isTensor() || !mem.toTupleRef().elements()[1].isTensor()) {
            set_error(err, ATH_ERR_MODEL,
                      "TorchScript model '%s': init_memory(x) returned a %s, expected a tuple (h, c) of two Tensors",
                      m.path.c_str(), ivalue_kind(mem).c_str());
            return false;
        }
        h = mem.toTupleRef().elements()[0].toTensor();
        c = mem.toTupleRef().elements()[1].toTensor();
    }
    c10::IValue r = m.module.forward({x, h, c});
    if (!r.isTuple() || r.toTupleRef().elements().size() != 3) {
        set_error(err, ATH_ERR_MODEL,
                  "TorchScript model '%s': forward(x, h, c) returned a %s, expected a tuple (delta, h, c)",
                  m.path.c_str(), ivalue_kind(r).c_str());
        return false;
    }
    const auto &el = r.toTupleRef().elements();
    for (size_t i = 0; i < 3; ++i) {
        if (!el[i].isTensor()) {
            set_error(err, ATH_ERR_MODEL,
                      "TorchScript model '%s': forward(x, h, c) returned a %s at position %zu, expected a Tensor",
                      m.path.c_str(), ivalue_kind(el[i]).c_str(), i);
            return false;
        }
    }
    delta = el[0].toTensor();
    m.h_pending = el[1].toTensor();
    m.c_pending = el[2].toTensor();
    m.mem_shape_pending = x.sizes().vec();
    m.have_pending = true;
    return true;
}

// Reports an exception escaping the model; never throws itself.
ath_status forward_failure(ath_error *err, ath_status code, const TorchModel *m, const char *raw) noexcept {
    const char *path = m != nullptr ? m->path.c_str() : "?";
    if (code == ATH_ERR_NOMEM)
        return set_error(err, code, "TorchScript model '%s': out of memory in forward", path);
    try {
        return set_error(err, code, "TorchScript model '%s': forward failed: %s", path,
                         clean_message(raw).c_str());
    } catch (...) {
        return set_error(err, code, "TorchScript model '%s': forward failed: %.300s", path,
                         raw != nullptr ? raw : "unknown C++ exception");
    }
}

ath_status model_forward(void *ctx, const float *in, const int64_t shape[4], float *out, int want_center,
                         ath_out_layout *layout, ath_error *err) noexcept {
    auto *m = static_cast<TorchModel *>(ctx);
    if (m == nullptr || in == nullptr || shape == nullptr || out == nullptr || layout == nullptr)
        return set_error(err, ATH_ERR_INVALID, "torch model forward: NULL argument");
    std::unique_lock<std::mutex> lock(m->mu, std::defer_lock);
    try {
        int64_t numel = 1;
        for (int i = 0; i < 4; ++i) {
            if (shape[i] <= 0 || shape[i] > (int64_t(1) << 40))
                return set_error(err, ATH_ERR_INVALID, "torch model forward: bad batch shape %s",
                                 shape_string(shape).c_str());
            if (numel > (int64_t(1) << 40) / shape[i])
                return set_error(err, ATH_ERR_INVALID, "torch model forward: batch %s too large",
                                 shape_string(shape).c_str());
            numel *= shape[i];
        }
        if (m->channels >= 0 && shape[1] != m->channels)
            return set_error(err, ATH_ERR_INVALID,
                             "TorchScript model '%s' expects %lld channels (2*d_state), got a batch %s",
                             m->path.c_str(), static_cast<long long>(m->channels), shape_string(shape).c_str());
        lock.lock();
        c10::InferenceMode guard;
        if (m->memory) m->drop_pending();
        const std::vector<int64_t> sizes(shape, shape + 4);
        // A copy, so that a model working in place cannot write into the caller's buffer
        // (model.h promises callers that `in` is read only; ~30 us for a 128^2 x 8 batch).
        torch::Tensor x = torch::from_blob(const_cast<float *>(in), sizes, torch::kFloat32);
        x = m->device.is_cpu() ? x.clone() : x.to(m->device);

        torch::Tensor y;
        if (!run_model(*m, x, y, err)) {
            m->drop_pending();
            return ATH_ERR_MODEL;
        }
        if (!y.is_floating_point() || y.dim() != 4 || !y.sizes().equals(sizes)) {
            m->drop_pending();
            return set_error(err, ATH_ERR_MODEL,
                             "TorchScript model '%s': forward returned a %s tensor of shape %s, expected float32 %s",
                             m->path.c_str(), std::string(c10::toString(y.scalar_type())).c_str(),
                             shape_string(y.sizes()).c_str(), shape_string(shape).c_str());
        }
        if (want_center) {
            torch::Tensor ctr = y.select(3, shape[3] / 2).select(2, shape[2] / 2);  // [B, C]
            ctr = ctr.to(torch::kCPU, torch::kFloat32).contiguous();
            std::memcpy(out, ctr.data_ptr<float>(), sizeof(float) * static_cast<size_t>(shape[0] * shape[1]));
            *layout = ATH_OUT_CENTER;
        } else {
            y = y.to(torch::kCPU, torch::kFloat32).contiguous();
            std::memcpy(out, y.data_ptr<float>(), sizeof(float) * static_cast<size_t>(numel));
            *layout = ATH_OUT_FULL;
        }
        return ATH_OK;
    } catch (const c10::Error &e) {
        if (lock.owns_lock()) m->drop_pending();
        return forward_failure(err, ATH_ERR_MODEL, m, e.what_without_backtrace());
    } catch (const std::bad_alloc &) {
        if (lock.owns_lock()) m->drop_pending();
        return forward_failure(err, ATH_ERR_NOMEM, m, nullptr);
    } catch (const std::exception &e) {
        if (lock.owns_lock()) m->drop_pending();
        return forward_failure(err, ATH_ERR_MODEL, m, e.what());
    } catch (...) {
        if (lock.owns_lock()) m->drop_pending();
        return forward_failure(err, ATH_ERR_MODEL, m, "unknown C++ exception");
    }
}

void model_commit(void *ctx) noexcept {
    auto *m = static_cast<TorchModel *>(ctx);
    if (m == nullptr) return;
    try {
        std::lock_guard<std::mutex> lock(m->mu);
        if (!m->have_pending) return;
        m->h = std::move(m->h_pending);
        m->c = std::move(m->c_pending);
        m->mem_shape = m->mem_shape_pending;
        m->have_committed = true;
        m->drop_pending();
    } catch (...) {
    }
}

void model_discard(void *ctx) noexcept {
    auto *m = static_cast<TorchModel *>(ctx);
    if (m == nullptr) return;
    try {
        std::lock_guard<std::mutex> lock(m->mu);
        m->drop_pending();
    } catch (...) {
    }
}

void model_reset(void *ctx) noexcept {
    auto *m = static_cast<TorchModel *>(ctx);
    if (m == nullptr) return;
    try {
        std::lock_guard<std::mutex> lock(m->mu);
        m->drop_pending();
        m->have_committed = false;
        m->h = torch::Tensor();
        m->c = torch::Tensor();
        m->mem_shape.clear();
        m->restored.clear();
    } catch (...) {
    }
}

int64_t model_memory_size(void *ctx) noexcept {
    auto *m = static_cast<TorchModel *>(ctx);
    if (m == nullptr) return 0;
    try {
        std::lock_guard<std::mutex> lock(m->mu);
        if (m->have_committed) return m->h.numel() + m->c.numel();
        return static_cast<int64_t>(m->restored.size());
    } catch (...) {
        return 0;
    }
}

ath_status model_memory_get(void *ctx, float *out, int64_t n, ath_error *err) noexcept {
    auto *m = static_cast<TorchModel *>(ctx);
    if (m == nullptr || out == nullptr) return set_error(err, ATH_ERR_INVALID, "memory_get: NULL argument");
    try {
        std::lock_guard<std::mutex> lock(m->mu);
        if (!m->have_committed) {
            if (n != static_cast<int64_t>(m->restored.size()))
                return set_error(err, ATH_ERR_INVALID, "memory_get: %lld floats asked, %zu held",
                                 static_cast<long long>(n), m->restored.size());
            std::copy(m->restored.begin(), m->restored.end(), out);
            return ATH_OK;
        }
        const int64_t nh = m->h.numel(), nc = m->c.numel();
        if (n != nh + nc)
            return set_error(err, ATH_ERR_INVALID, "memory_get: %lld floats asked, %lld held",
                             static_cast<long long>(n), static_cast<long long>(nh + nc));
        torch::Tensor h = m->h.detach().to(torch::kCPU, torch::kFloat32).contiguous();
        torch::Tensor c = m->c.detach().to(torch::kCPU, torch::kFloat32).contiguous();
        std::memcpy(out, h.data_ptr<float>(), static_cast<size_t>(nh) * sizeof(float));
        std::memcpy(out + nh, c.data_ptr<float>(), static_cast<size_t>(nc) * sizeof(float));
        return ATH_OK;
    } catch (const std::exception &e) {
        return set_error(err, ATH_ERR_MODEL, "TorchScript model '%s': memory_get failed: %s", m->path.c_str(), e.what());
    } catch (...) {
        return set_error(err, ATH_ERR_MODEL, "memory_get: unknown C++ exception");
    }
}

ath_status model_memory_set(void *ctx, const float *in, int64_t n, ath_error *err) noexcept {
    auto *m = static_cast<TorchModel *>(ctx);
    if (m == nullptr || (in == nullptr && n > 0) || n < 0)
        return set_error(err, ATH_ERR_INVALID, "memory_set: bad argument");
    try {
        std::lock_guard<std::mutex> lock(m->mu);
        std::vector<float> v(in, in + n);
        m->drop_pending();
        m->have_committed = false;
        m->h = torch::Tensor();
        m->c = torch::Tensor();
        m->mem_shape.clear();
        m->restored.swap(v);
        return ATH_OK;
    } catch (const std::bad_alloc &) {
        return set_error(err, ATH_ERR_NOMEM, "memory_set: out of memory");
    } catch (...) {
        return set_error(err, ATH_ERR_MODEL, "memory_set: unknown C++ exception");
    }
}

void model_destroy(void *ctx) noexcept {
    try {
        delete static_cast<TorchModel *>(ctx);
    } catch (...) {
    }
}

const ath_model_ops kStatelessOps = {
    "torchscript", model_forward, nullptr, nullptr, nullptr, model_destroy, nullptr, nullptr, nullptr,
};

const ath_model_ops kMemoryOps = {
    "torchscript-memory", model_forward, model_commit, model_discard, model_reset, model_destroy,
    model_memory_size, model_memory_get, model_memory_set,
};

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

struct Failure {
    ath_load_error kind;
    ath_status code;
    const char *cause;
};

bool contains(const std::string &s, const char *needle) {
    return s.find(needle) != std::string::npos;
}

// Classifies what torch::jit::load said about a file that exists and is readable.
Failure classify(const std::string &msg, bool is_zip) {
    if (contains(msg, "not a ZIP archive") || !is_zip)
        return {ATH_LOAD_NOT_ZIP, ATH_ERR_IO, "not a TorchScript archive (not a zip file)"};
    if (contains(msg, "is not in a subdirectory") || contains(msg, "failed locating file constants.pkl") ||
        contains(msg, "failed locating file data.pkl") || contains(msg, "failed locating file version"))
        return {ATH_LOAD_NOT_TORCHSCRIPT, ATH_ERR_IO,
                "not a TorchScript archive (a zip file without TorchScript code; a torch.save checkpoint "
                "or state_dict is not a torch.jit.save export)"};
    if (contains(msg, "maximum supported version") || contains(msg, "minimum supported version") ||
        (contains(msg, "version") && contains(msg, "not supported")))
        return {ATH_LOAD_INCOMPATIBLE, ATH_ERR_IO,
                "incompatible torch version (file format version not supported by LibTorch " TORCH_VERSION ")"};
    if (contains(msg, "Unknown builtin op") || contains(msg, "Unknown type name") ||
        contains(msg, "Unknown type constructor") || contains(msg, "Arguments for call are not valid"))
        return {ATH_LOAD_INCOMPATIBLE, ATH_ERR_IO,
                "incompatible torch version (uses operators or types unknown to LibTorch " TORCH_VERSION
                "; written by another torch version, or needs a custom-op library)"};
    if (contains(msg, "CUDA") &&
        (contains(msg, "is_available() is False") || contains(msg, "not available") || contains(msg, "no CUDA")))
        return {ATH_LOAD_CUDA_UNAVAILABLE, ATH_ERR_MODEL, "CUDA unavailable"};
    return {ATH_LOAD_CORRUPT, ATH_ERR_IO, "corrupt or truncated TorchScript archive"};
}

ath_status fail(ath_error *err, int *kind, const Failure &f, const char *path, const std::string &detail) {
    set_kind(kind, f.kind);
    if (detail.empty()) return set_error(err, f.code, "cannot load JIT model %s: %s", path, f.cause);
    return set_error(err, f.code, "cannot load JIT model %s: %s (%s)", path, f.cause, detail.c_str());
}

// Checks that the file is a readable regular file; tells whether it starts like a zip.
bool precheck_file(const char *path, bool *is_zip, ath_error *err, int *kind) {
    struct stat st;
    if (stat(path, &st) != 0) {
        const int e = errno;
        if (e == ENOENT || e == ENOTDIR) {
            fail(err, kind, {ATH_LOAD_NOT_FOUND, ATH_ERR_IO, "file not found"}, path, "");
        } else {
            fail(err, kind, {ATH_LOAD_NOT_A_FILE, ATH_ERR_IO, "cannot access the file"}, path,
                 std::strerror(e));
        }
        return false;
    }
    if (S_ISDIR(st.st_mode)) {
        fail(err, kind, {ATH_LOAD_NOT_A_FILE, ATH_ERR_IO, "is a directory, not a file"}, path, "");
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        fail(err, kind, {ATH_LOAD_NOT_A_FILE, ATH_ERR_IO, "not a regular file"}, path, "");
        return false;
    }
    if (st.st_size == 0) {
        fail(err, kind, {ATH_LOAD_NOT_ZIP, ATH_ERR_IO, "not a TorchScript archive (empty file)"},
             path, "");
        return false;
    }
    std::FILE *fh = std::fopen(path, "rb");
    if (fh == nullptr) {
        const int e = errno;
        fail(err, kind, {ATH_LOAD_NOT_A_FILE, ATH_ERR_IO, "cannot open the file"}, path, std::strerror(e));
        return false;
    }
    unsigned char magic[4] = {0, 0, 0, 0};
    const size_t got = std::fread(magic, 1, sizeof magic, fh);
    std::fclose(fh);
    *is_zip = got == 4 && magic[0] == 'P' && magic[1] == 'K' &&
              ((magic[2] == 3 && magic[3] == 4) || (magic[2] == 5 && magic[3] == 6));
    return true;
}

// Parses and checks the device; false with err set if unusable.
bool parse_device(const char *path, const char *device, c10::Device *out, ath_error *err, int *kind) {
    const std::string name = (device != nullptr && device[0] != '\0') ? device : "cpu";
    try {
        *out = c10::Device(name);
    } catch (const c10::Error &e) {
        set_kind(kind, ATH_LOAD_BAD_DEVICE);
        set_error(err, ATH_ERR_INVALID, "cannot load JIT model %s: invalid device '%s' (%s)", path,
                  name.c_str(), clean_message(e.what_without_backtrace()).c_str());
        return false;
    }
    if (!out->is_cpu() && !out->is_cuda()) {
        set_kind(kind, ATH_LOAD_BAD_DEVICE);
        set_error(err, ATH_ERR_INVALID,
                  "cannot load JIT model %s: unsupported device '%s' (expected 'cpu', 'cuda' or 'cuda:N')",
                  path, name.c_str());
        return false;
    }
    if (out->is_cuda()) {
        if (!torch::cuda::is_available()) {
            set_kind(kind, ATH_LOAD_CUDA_UNAVAILABLE);
            set_error(err, ATH_ERR_MODEL,
                      "cannot load JIT model %s: device '%s' requested but CUDA is not available "
                      "(no GPU visible, or LibTorch %s built without CUDA)",
                      path, name.c_str(), TORCH_VERSION);
            return false;
        }
        const int64_t n = static_cast<int64_t>(torch::cuda::device_count());
        if (out->has_index() && out->index() >= n) {
            set_kind(kind, ATH_LOAD_CUDA_UNAVAILABLE);
            set_error(err, ATH_ERR_MODEL,
                      "cannot load JIT model %s: device '%s' requested but only %lld CUDA device(s) exist",
                      path, name.c_str(), static_cast<long long>(n));
            return false;
        }
    }
    return true;
}

// Decides stateless vs memory from the module and the caller's has_memory;
// false with err set when the module does not follow docs/torchscript.md.
bool check_contract(const torch::jit::Module &module, const char *path, int has_memory, bool *memory,
                    ath_error *err, int *kind) {
    auto fwd = module.find_method("forward");
    if (!fwd) {
        fail(err, kind, {ATH_LOAD_BAD_MODEL, ATH_ERR_MODEL, "the module has no forward method"}, path, "");
        return false;
    }
    const auto &args = fwd->function().getSchema().arguments();
    int n_total = 0, n_required = 0;
    for (size_t i = 1; i < args.size(); ++i) {  // args[0] is self
        ++n_total;
        if (!args[i].default_value()) ++n_required;
    }
    const bool has_init = module.find_method("init_memory").has_value();
    const bool fits_stateless = n_total >= 1 && n_required <= 1;
    const bool fits_memory = n_total >= 3 && n_required <= 3 && has_init;
    char detail[160];
    std::snprintf(detail, sizeof detail, "forward takes %d input(s), %d required; init_memory %s", n_total,
                  n_required, has_init ? "present" : "absent");
    if (has_memory == 1) {
        if (!fits_memory) {
            fail(err, kind,
                 {ATH_LOAD_BAD_MODEL, ATH_ERR_MODEL,
                  "declared a memory model, but it lacks forward(x, h, c) and init_memory(x)"},
                 path, detail);
            return false;
        }
        *memory = true;
    } else if (has_memory == 0) {
        if (!fits_stateless) {
            fail(err, kind,
                 {ATH_LOAD_BAD_MODEL, ATH_ERR_MODEL,
                  "declared stateless, but forward does not take a single input x "
                  "(a memory model needs has_memory=true in atheria_meta.json)"},
                 path, detail);
            return false;
        }
        *memory = false;
    } else {
        if (fits_memory && n_required >= 2) {
            *memory = true;
        } else if (fits_stateless) {
            *memory = false;
        } else {
            fail(err, kind,
                 {ATH_LOAD_BAD_MODEL, ATH_ERR_MODEL,
                  "forward is neither forward(x) nor forward(x, h, c) with init_memory(x)"},
                 path, detail);
            return false;
        }
    }
    return true;
}

// Freeze + optimize_for_inference of a loaded module, kept only when exact.
struct LoadOptions {
    int optimize = 0;
    int64_t probe_shape[4] = {0, 0, 0, 0};
    int optimized = 0;
    std::string note;
};

// Max |a - b| / max(1, max |a|) over the tensors of two results (inf on a structure mismatch).
double result_difference(const c10::IValue &a, const c10::IValue &b) {
    std::vector<torch::Tensor> ta, tb;
    auto collect = [](const c10::IValue &v, std::vector<torch::Tensor> &out) {
        if (v.isTensor()) {
            out.push_back(v.toTensor());
        } else if (v.isTuple()) {
            for (const auto &e : v.toTupleRef().elements())
                if (e.isTensor()) out.push_back(e.toTensor());
        }
    };
    collect(a, ta);
    collect(b, tb);
    if (ta.empty() || ta.size() != tb.size()) return INFINITY;
    double worst = 0.0;
    for (size_t i = 0; i < ta.size(); ++i) {
        if (!ta[i].sizes().equals(tb[i].sizes())) return INFINITY;
        const torch::Tensor fa = ta[i].to(torch::kCPU, torch::kFloat64);
        const torch::Tensor fb = tb[i].to(torch::kCPU, torch::kFloat64);
        const double scale = std::max(1.0, fa.abs().max().item<double>());
        const double d = (fa - fb).abs().max().item<double>() / scale;
        if (!(d <= worst)) worst = d;  // NaN propagates as "not exact"
    }
    return worst;
}

// Replaces `module` by its frozen, inference-optimised copy when that copy's
// forward (and init_memory) agrees with the original within 1e-5 on a random
// input; returns whether it did, with the reason in *why.  Never throws.
bool optimize_module(torch::jit::Module &module, c10::Device dev, bool memory, int64_t channels,
                     const int64_t probe[4], std::string *why) noexcept {
    constexpr double kTol = 1e-5;
    try {
        std::vector<int64_t> shape = {1, channels > 0 ? channels : 2, 16, 16};
        if (probe != nullptr && probe[0] > 0 && probe[1] > 0 && probe[2] > 0 && probe[3] > 0)
            shape.assign(probe, probe + 4);
        c10::InferenceMode guard(false);  // freeze needs ordinary tensors
        std::vector<std::string> keep;
        if (memory) keep.push_back("init_memory");
        torch::jit::Module frozen = torch::jit::freeze(module, keep);
        frozen = torch::jit::optimize_for_inference(frozen, keep);
        torch::NoGradGuard no_grad;
        const auto gen_opts = torch::TensorOptions().dtype(torch::kFloat32);
        // Deterministic pseudo-random probes, without touching torch's global RNG.
        auto probe_tensor = [&](c10::IntArrayRef sz, double phase) {
            int64_t n = 1;
            for (int64_t v : sz) n *= v;
            return torch::sin(torch::arange(n, gen_opts) * 0.7071 + phase).mul(1.5).reshape(sz).to(dev);
        };
        torch::Tensor x = probe_tensor(shape, 0.3);
        double diff;
        if (memory) {
            c10::IValue m0 = module.get_method("init_memory")({x});
            c10::IValue m1 = frozen.get_method("init_memory")({x});
            diff = result_difference(m0, m1);
            if (diff <= kTol && m0.isTuple() && m0.toTupleRef().elements().size() == 2) {
                const auto &hc = m0.toTupleRef().elements();
                // a non-zero memory probes the recurrent path too
                torch::Tensor h = probe_tensor(hc[0].toTensor().sizes(), 1.1) * 0.5;
                torch::Tensor c = probe_tensor(hc[1].toTensor().sizes(), 2.3) * 0.5;
                diff = std::max(diff, result_difference(module.forward({x, h, c}), frozen.forward({x, h, c})));
            }
        } else {
            diff = result_difference(module.forward({x}), frozen.forward({x}));
        }
        char buf[200];
        if (!(diff <= kTol)) {
            std::snprintf(buf, sizeof buf, "frozen module differs by %.3g (> %g) on %s; kept the plain module",
                          diff, kTol, shape_string(shape).c_str());
            *why = buf;
            return false;
        }
        std::snprintf(buf, sizeof buf, "frozen + optimize_for_inference, max rel. diff %.3g on %s", diff,
                      shape_string(shape).c_str());
        *why = buf;
        module = std::move(frozen);
        return true;
    } catch (const c10::Error &e) {
        try {
            *why = "freeze/optimize failed (" + clean_message(e.what_without_backtrace()) + "); kept the plain module";
        } catch (...) {
        }
    } catch (const std::exception &e) {
        try {
            *why = "freeze/optimize failed (" + clean_message(e.what()) + "); kept the plain module";
        } catch (...) {
        }
    } catch (...) {
    }
    return false;
}

ath_status load_impl(const char *path, const char *device, int has_memory, int64_t receptive_radius,
                     int zero_preserving, int64_t channels, LoadOptions &opt, ath_model **out, int *kind,
                     ath_error *err) {
    bool is_zip = false;
    if (!precheck_file(path, &is_zip, err, kind)) return err != nullptr ? err->code : ATH_ERR_IO;
    c10::Device dev(c10::kCPU);
    if (!parse_device(path, device, &dev, err, kind)) return err != nullptr ? err->code : ATH_ERR_INVALID;

    torch::jit::Module module;
    try {
        module = torch::jit::load(std::string(path), dev);
    } catch (const c10::Error &e) {
        const std::string msg = clean_message(e.what_without_backtrace());
        return fail(err, kind, classify(msg, is_zip), path, msg);
    } catch (const std::bad_alloc &) {
        throw;
    } catch (const std::exception &e) {
        const std::string msg = clean_message(e.what());
        return fail(err, kind, classify(msg, is_zip), path, msg);
    }
    module.eval();

    bool memory = false;
    if (!check_contract(module, path, has_memory, &memory, err, kind))
        return err != nullptr ? err->code : ATH_ERR_MODEL;
    if (opt.optimize) {
        std::string why;
        opt.optimized = optimize_module(module, dev, memory, channels, opt.probe_shape, &why) ? 1 : 0;
        opt.note = why;
    }

    auto *ctx = new TorchModel(std::move(module), dev, memory, channels, path);
    auto *model = static_cast<ath_model *>(std::calloc(1, sizeof(ath_model)));
    if (model == nullptr) {
        delete ctx;
        throw std::bad_alloc();
    }
    model->ops = memory ? &kMemoryOps : &kStatelessOps;
    model->ctx = ctx;
    model->channels = channels >= 0 ? channels : -1;
    model->receptive_radius = receptive_radius >= 0 ? receptive_radius : -1;
    model->zero_preserving = zero_preserving == 0 || zero_preserving == 1 ? zero_preserving : -1;
    model->has_memory = memory ? 1 : 0;
    *out = model;
    set_kind(kind, ATH_LOAD_OK);
    return ATH_OK;
}

}  // namespace

extern "C" {

ATH_TORCH_API int ath_torch_shim_abi_version(void) {
    return ATH_TORCH_SHIM_ABI_VERSION;
}

ATH_TORCH_API const char *ath_torch_shim_torch_version(void) {
    return TORCH_VERSION;
}

ATH_TORCH_API int ath_torch_cuda_available(void) {
    try {
        return torch::cuda::is_available() ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

ATH_TORCH_API ath_status ath_torch_model_load(const char *path, const char *device, int has_memory,
                                              int64_t receptive_radius, int zero_preserving, int64_t channels,
                                              ath_model **out, int *kind, ath_error *err) {
    set_kind(kind, ATH_LOAD_OTHER);
    if (path == nullptr || out == nullptr) {
        set_kind(kind, ATH_LOAD_OTHER);
        return set_error(err, ATH_ERR_INVALID, "ath_torch_model_load: NULL path or out");
    }
    if (has_memory < -1 || has_memory > 1 || channels == 0 || channels < -1)
        return set_error(err, ATH_ERR_INVALID,
                         "ath_torch_model_load: has_memory must be -1, 0 or 1 and channels -1 or positive");
    try {
        LoadOptions opt;
        return load_impl(path, device, has_memory, receptive_radius, zero_preserving, channels, opt, out, kind,
                         err);
    } catch (const std::bad_alloc &) {
        set_kind(kind, ATH_LOAD_OUT_OF_MEMORY);
        return set_error(err, ATH_ERR_NOMEM, "cannot load JIT model %s: out of memory", path);
    } catch (const c10::Error &e) {
        set_kind(kind, ATH_LOAD_OTHER);
        return set_error(err, ATH_ERR_MODEL, "cannot load JIT model %s: %s", path,
                         clean_message(e.what_without_backtrace()).c_str());
    } catch (const std::exception &e) {
        set_kind(kind, ATH_LOAD_OTHER);
        return set_error(err, ATH_ERR_MODEL, "cannot load JIT model %s: %s", path,
                         clean_message(e.what()).c_str());
    } catch (...) {
        set_kind(kind, ATH_LOAD_OTHER);
        return set_error(err, ATH_ERR_MODEL, "cannot load JIT model %s: unknown C++ exception", path);
    }
}

ATH_TORCH_API ath_status ath_torch_model_load2(const char *path, const char *device, int has_memory,
                                               int64_t receptive_radius, int zero_preserving, int64_t channels,
                                               int optimize, const int64_t probe_shape[4], ath_model **out,
                                               int *optimized, char *note, size_t note_size, int *kind,
                                               ath_error *err) {
    set_kind(kind, ATH_LOAD_OTHER);
    if (optimized != nullptr) *optimized = 0;
    if (note != nullptr && note_size > 0) note[0] = '\0';
    if (path == nullptr || out == nullptr)
        return set_error(err, ATH_ERR_INVALID, "ath_torch_model_load2: NULL path or out");
    if (has_memory < -1 || has_memory > 1 || channels == 0 || channels < -1)
        return set_error(err, ATH_ERR_INVALID,
                         "ath_torch_model_load2: has_memory must be -1, 0 or 1 and channels -1 or positive");
    try {
        LoadOptions opt;
        opt.optimize = optimize ? 1 : 0;
        if (probe_shape != nullptr) std::copy(probe_shape, probe_shape + 4, opt.probe_shape);
        const ath_status st = load_impl(path, device, has_memory, receptive_radius, zero_preserving, channels, opt,
                                        out, kind, err);
        if (st == ATH_OK) {
            if (optimized != nullptr) *optimized = opt.optimized;
            if (note != nullptr && note_size > 0) std::snprintf(note, note_size, "%s", opt.note.c_str());
        }
        return st;
    } catch (const std::bad_alloc &) {
        set_kind(kind, ATH_LOAD_OUT_OF_MEMORY);
        return set_error(err, ATH_ERR_NOMEM, "cannot load JIT model %s: out of memory", path);
    } catch (const c10::Error &e) {
        return set_error(err, ATH_ERR_MODEL, "cannot load JIT model %s: %s", path,
                         clean_message(e.what_without_backtrace()).c_str());
    } catch (const std::exception &e) {
        return set_error(err, ATH_ERR_MODEL, "cannot load JIT model %s: %s", path, clean_message(e.what()).c_str());
    } catch (...) {
        return set_error(err, ATH_ERR_MODEL, "cannot load JIT model %s: unknown C++ exception", path);
    }
}

}  // extern "C"
