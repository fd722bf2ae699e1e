// aoti_model.cpp — AOTInductor packages (.pt2) as ath_models, over LibTorch.
//
// Part of the LibTorch shim (atheria_core._torch_shim; see torch_shim.cpp for
// the rules: no C++ exception leaves an extern "C" function or a vtable
// entry, no Python, errors written into ath_error directly).  A package is
// compiled by torch._inductor.aoti_compile_and_package for one input shape
// (atheria_core.export.export_model writes it; file contract in
// docs/torchscript.md) and run here with torch::inductor::AOTIModelPackageLoader.
//
// Memory models: the package's forward is (x, h, c) -> (delta, h', c') and the
// initial memory is zeros of the recorded memory shape.  The memory protocol
// (pending / committed, commit / discard / reset) is the one of model.h; the
// state lives in AotiModel so that snapshot ops (memory_size / memory_get /
// memory_set) can be added next to model_commit and friends.
#include "atheria/torch_shim.h"

#include <torch/cuda.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

namespace {

__attribute__((format(printf, 3, 4))) ath_status set_error(ath_error *err, ath_status code, const char *fmt,
                                                           ...) noexcept {
    if (err != nullptr) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        std::vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

void set_kind(int *kind, ath_load_error k) noexcept {
    if (kind != nullptr) *kind = static_cast<int>(k);
}

ath_status fail(ath_error *err, int *kind, ath_load_error k, const char *path, const std::string &cause) noexcept {
    set_kind(kind, k);
    return set_error(err, ath_load_error_status(k), "cannot load AOTInductor package %s: %.400s", path,
                     cause.c_str());
}

// One line, bounded: LibTorch's messages carry newlines and backtraces.
std::string one_line(const char *what) {
    std::string out;
    bool space = false;
    for (const char *p = what != nullptr ? what : ""; *p != '\0'; ++p) {
        const char ch = *p;
        if (ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ') {
            space = true;
            continue;
        }
        if (space && !out.empty()) out.push_back(' ');
        space = false;
        out.push_back(ch);
        if (out.size() > 300) {
            out += "...";
            break;
        }
    }
    return out;
}

std::string shape_string(c10::IntArrayRef sizes) {
    std::string s = "[";
    for (size_t i = 0; i < sizes.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(sizes[i]);
    }
    return s + "]";
}

struct AotiModel {
    std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
    c10::Device device{c10::kCPU};
    std::vector<int64_t> in_shape;
    std::vector<int64_t> mem_shape;  // empty: stateless
    std::string path;

    std::mutex mu;  // serialises forward and the memory operations
    bool have_committed = false, have_pending = false;
    torch::Tensor h, c, h_pending, c_pending;

    bool memory() const { return !mem_shape.empty(); }
    void drop_pending() {
        have_pending = false;
        h_pending = torch::Tensor();
        c_pending = torch::Tensor();
    }
};

ath_status forward_error(ath_error *err, const AotiModel *m, const char *what) noexcept {
    try {
        return set_error(err, ATH_ERR_MODEL, "AOTInductor model '%s': forward failed: %s", m->path.c_str(),
                         one_line(what).c_str());
    } catch (...) {
        return set_error(err, ATH_ERR_MODEL, "AOTInductor model '%s': forward failed", m->path.c_str());
    }
}

ath_status aoti_forward(void *ctx, const float *in, const int64_t shape[4], float *out, int want_center,
                        ath_out_layout *layout, ath_error *err) noexcept {
    auto *m = static_cast<AotiModel *>(ctx);
    if (m == nullptr || in == nullptr || shape == nullptr || out == nullptr || layout == nullptr)
        return set_error(err, ATH_ERR_INVALID, "AOTInductor model forward: NULL argument");
    std::unique_lock<std::mutex> lock(m->mu, std::defer_lock);
    try {
        const c10::IntArrayRef sizes(shape, 4);
        if (!sizes.equals(m->in_shape))
            return set_error(err, ATH_ERR_INVALID,
                             "AOTInductor model '%s' was compiled for inputs %s, got %s (export it for this "
                             "grid size, or use the TorchScript file)",
                             m->path.c_str(), shape_string(m->in_shape).c_str(), shape_string(sizes).c_str());
        lock.lock();
        c10::InferenceMode guard;
        if (m->memory()) m->drop_pending();
        // No copy: an exported (functionalised) program does not write into its inputs.
        torch::Tensor x = torch::from_blob(const_cast<float *>(in), sizes, torch::kFloat32);
        if (!m->device.is_cpu()) x = x.to(m->device);
        std::vector<torch::Tensor> inputs{x};
        if (m->memory()) {
            if (!m->have_committed) {
                const auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(m->device);
                m->h = torch::zeros(m->mem_shape, opts);
                m->c = torch::zeros(m->mem_shape, opts);
                m->have_committed = true;
            }
            inputs.push_back(m->h);
            inputs.push_back(m->c);
        }
        std::vector<torch::Tensor> res = m->loader->run(inputs);
        const size_t want = m->memory() ? 3 : 1;
        if (res.size() != want)
            return set_error(err, ATH_ERR_MODEL, "AOTInductor model '%s' returned %zu outputs, expected %zu",
                             m->path.c_str(), res.size(), want);
        torch::Tensor y = res[0];
        if (!y.sizes().equals(sizes))
            return set_error(err, ATH_ERR_MODEL, "AOTInductor model '%s' returned shape %s, expected %s",
                             m->path.c_str(), shape_string(y.sizes()).c_str(), shape_string(sizes).c_str());
        if (m->memory()) {
            m->h_pending = res[1];
            m->c_pending = res[2];
            m->have_pending = true;
        }
        if (want_center) {
            torch::Tensor ctr = y.select(3, shape[3] / 2).select(2, shape[2] / 2).to(torch::kCPU, torch::kFloat32)
                                    .contiguous();
            std::memcpy(out, ctr.data_ptr<float>(), sizeof(float) * static_cast<size_t>(shape[0] * shape[1]));
            *layout = ATH_OUT_CENTER;
        } else {
            y = y.to(torch::kCPU, torch::kFloat32).contiguous();
            std::memcpy(out, y.data_ptr<float>(), sizeof(float) * static_cast<size_t>(y.numel()));
            *layout = ATH_OUT_FULL;
        }
        return ATH_OK;
    } catch (const c10::Error &e) {
        if (lock.owns_lock()) m->drop_pending();
        return forward_error(err, m, e.what_without_backtrace());
    } catch (const std::bad_alloc &) {
        if (lock.owns_lock()) m->drop_pending();
        return set_error(err, ATH_ERR_NOMEM, "AOTInductor model '%s': out of memory in forward", m->path.c_str());
    } catch (const std::exception &e) {
        if (lock.owns_lock()) m->drop_pending();
        return forward_error(err, m, e.what());
    } catch (...) {
        if (lock.owns_lock()) m->drop_pending();
        return forward_error(err, m, "unknown C++ exception");
    }
}

void aoti_commit(void *ctx) noexcept {
    auto *m = static_cast<AotiModel *>(ctx);
    if (m == nullptr) return;
    try {
        std::lock_guard<std::mutex> lock(m->mu);
        if (!m->have_pending) return;
        m->h = std::move(m->h_pending);
        m->c = std::move(m->c_pending);
        m->have_committed = true;
        m->drop_pending();
    } catch (...) {
    }
}

void aoti_discard(void *ctx) noexcept {
    auto *m = static_cast<AotiModel *>(ctx);
    if (m == nullptr) return;
    try {
        std::lock_guard<std::mutex> lock(m->mu);
        m->drop_pending();
    } catch (...) {
    }
}

void aoti_reset(void *ctx) noexcept {
    auto *m = static_cast<AotiModel *>(ctx);
    if (m == nullptr) return;
    try {
        std::lock_guard<std::mutex> lock(m->mu);
        m->drop_pending();
        m->have_committed = false;
        m->h = torch::Tensor();
        m->c = torch::Tensor();
    } catch (...) {
    }
}

void aoti_destroy(void *ctx) noexcept {
    try {
        delete static_cast<AotiModel *>(ctx);
    } catch (...) {
    }
}

// Snapshot ops (model.h): the memory of a package has the recorded shape, so
// its size is known before the first step (zeros until then).
int64_t aoti_memory_size(void *ctx) noexcept {
    auto *m = static_cast<AotiModel *>(ctx);
    if (m == nullptr || !m->memory()) return 0;
    int64_t n = 1;
    for (int64_t s : m->mem_shape) n *= s;
    return 2 * n;
}

ath_status aoti_memory_get(void *ctx, float *out, int64_t n, ath_error *err) noexcept {
    auto *m = static_cast<AotiModel *>(ctx);
    if (m == nullptr || out == nullptr) return set_error(err, ATH_ERR_INVALID, "memory_get: NULL argument");
    const int64_t want = aoti_memory_size(ctx);
    if (n != want)
        return set_error(err, ATH_ERR_INVALID, "memory_get: %lld floats asked, %lld held", static_cast<long long>(n),
                         static_cast<long long>(want));
    try {
        std::lock_guard<std::mutex> lock(m->mu);
        const int64_t half = want / 2;
        if (!m->have_committed) {
            std::fill(out, out + want, 0.0f);
            return ATH_OK;
        }
        torch::Tensor h = m->h.detach().to(torch::kCPU, torch::kFloat32).contiguous();
        torch::Tensor c = m->c.detach().to(torch::kCPU, torch::kFloat32).contiguous();
        std::memcpy(out, h.data_ptr<float>(), static_cast<size_t>(half) * sizeof(float));
        std::memcpy(out + half, c.data_ptr<float>(), static_cast<size_t>(half) * sizeof(float));
        return ATH_OK;
    } catch (const std::exception &e) {
        return set_error(err, ATH_ERR_MODEL, "AOTInductor model '%s': memory_get failed: %.300s", m->path.c_str(),
                         e.what());
    } catch (...) {
        return set_error(err, ATH_ERR_MODEL, "memory_get: unknown C++ exception");
    }
}

ath_status aoti_memory_set(void *ctx, const float *in, int64_t n, ath_error *err) noexcept {
    auto *m = static_cast<AotiModel *>(ctx);
    if (m == nullptr || (in == nullptr && n > 0)) return set_error(err, ATH_ERR_INVALID, "memory_set: bad argument");
    const int64_t want = aoti_memory_size(ctx);
    if (n != want && n != 0)
        return set_error(err, ATH_ERR_INVALID, "memory_set: %lld floats given, the package's memory holds %lld",
                         static_cast<long long>(n), static_cast<long long>(want));
    try {
        std::lock_guard<std::mutex> lock(m->mu);
        if (n == 0) {
            m->drop_pending();
            m->have_committed = false;
            m->h = torch::Tensor();
            m->c = torch::Tensor();
            return ATH_OK;
        }
        const auto opts = torch::TensorOptions().dtype(torch::kFloat32);
        torch::Tensor h = torch::from_blob(const_cast<float *>(in), m->mem_shape, opts).clone().to(m->device);
        torch::Tensor c = torch::from_blob(const_cast<float *>(in + n / 2), m->mem_shape, opts).clone().to(m->device);
        m->drop_pending();
        m->h = std::move(h);
        m->c = std::move(c);
        m->have_committed = true;
        return ATH_OK;
    } catch (const std::bad_alloc &) {
        return set_error(err, ATH_ERR_NOMEM, "memory_set: out of memory");
    } catch (const std::exception &e) {
        return set_error(err, ATH_ERR_MODEL, "AOTInductor model '%s': memory_set failed: %.300s", m->path.c_str(),
                         e.what());
    } catch (...) {
        return set_error(err, ATH_ERR_MODEL, "memory_set: unknown C++ exception");
    }
}

const ath_model_ops kAotiOps = {"aoti", aoti_forward, nullptr, nullptr, nullptr, aoti_destroy,
                                nullptr, nullptr, nullptr};
const ath_model_ops kAotiMemoryOps = {"aoti-memory", aoti_forward, aoti_commit, aoti_discard, aoti_reset,
                                      aoti_destroy, aoti_memory_size, aoti_memory_get, aoti_memory_set};

bool valid_shape(const int64_t s[4]) {
    for (int i = 0; i < 4; ++i)
        if (s[i] <= 0 || s[i] > (int64_t(1) << 20)) return false;
    return true;
}

ath_status load_impl(const char *path, const char *device, const int64_t input_shape[4],
                     const int64_t memory_shape[4], int64_t receptive_radius, int zero_preserving, ath_model **out,
                     int *kind, ath_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) {
        const int e = errno;
        return fail(err, kind, e == ENOENT || e == ENOTDIR ? ATH_LOAD_NOT_FOUND : ATH_LOAD_NOT_A_FILE, path,
                    e == ENOENT || e == ENOTDIR ? "file not found" : std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) return fail(err, kind, ATH_LOAD_NOT_A_FILE, path, "not a regular file");
    const std::string name = (device != nullptr && device[0] != '\0') ? device : "cpu";
    c10::Device dev(c10::kCPU);
    try {
        dev = c10::Device(name);
    } catch (const c10::Error &e) {
        return fail(err, kind, ATH_LOAD_BAD_DEVICE, path,
                    "invalid device '" + name + "' (" + one_line(e.what_without_backtrace()) + ")");
    }
    if (!dev.is_cpu() && !dev.is_cuda())
        return fail(err, kind, ATH_LOAD_BAD_DEVICE, path,
                    "unsupported device '" + name + "' (expected 'cpu', 'cuda' or 'cuda:N')");
    if (dev.is_cuda() && !torch::cuda::is_available())
        return fail(err, kind, ATH_LOAD_CUDA_UNAVAILABLE, path,
                    "device '" + name + "' requested but CUDA is not available (LibTorch " TORCH_VERSION ")");

    std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
    try {
        // run_single_threaded: forward() is serialised by AotiModel::mu already.
        loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
            std::string(path), "model", /*run_single_threaded=*/false, /*num_runners=*/1,
            static_cast<c10::DeviceIndex>(dev.has_index() ? dev.index() : -1));
    } catch (const c10::Error &e) {
        const std::string msg = one_line(e.what_without_backtrace());
        return fail(err, kind, ATH_LOAD_CORRUPT, path, "not a loadable AOTInductor package (" + msg + ")");
    } catch (const std::bad_alloc &) {
        throw;
    } catch (const std::exception &e) {
        return fail(err, kind, ATH_LOAD_CORRUPT, path, "not a loadable AOTInductor package (" + one_line(e.what()) +
                                                           ")");
    }
    auto meta = loader->get_metadata();
    auto it = meta.find("AOTI_DEVICE_KEY");
    if (it != meta.end() && !it->second.empty() && it->second != (dev.is_cuda() ? "cuda" : "cpu"))
        return fail(err, kind, ATH_LOAD_MISMATCH, path,
                    "package compiled for device '" + it->second + "', requested '" + name + "'");

    auto m = std::make_unique<AotiModel>();
    m->loader = std::move(loader);
    m->device = dev;
    m->in_shape.assign(input_shape, input_shape + 4);
    if (memory_shape != nullptr) m->mem_shape.assign(memory_shape, memory_shape + 4);
    m->path = path;
    auto *model = static_cast<ath_model *>(std::calloc(1, sizeof(ath_model)));
    if (model == nullptr) throw std::bad_alloc();
    const bool memory = m->memory();
    model->ops = memory ? &kAotiMemoryOps : &kAotiOps;
    model->ctx = m.release();
    model->channels = input_shape[1];
    model->receptive_radius = receptive_radius >= 0 ? receptive_radius : -1;
    model->zero_preserving = zero_preserving == 0 || zero_preserving == 1 ? zero_preserving : -1;
    model->has_memory = memory ? 1 : 0;
    *out = model;
    set_kind(kind, ATH_LOAD_OK);
    return ATH_OK;
}

}  // namespace

extern "C" {

ATH_TORCH_API ath_status ath_aoti_model_load(const char *path, const char *device, const int64_t input_shape[4],
                                             const int64_t memory_shape[4], int64_t receptive_radius,
                                             int zero_preserving, ath_model **out, int *kind, ath_error *err) {
    set_kind(kind, ATH_LOAD_OTHER);
    if (path == nullptr || out == nullptr || input_shape == nullptr)
        return set_error(err, ATH_ERR_INVALID, "ath_aoti_model_load: NULL path, input_shape or out");
    if (!valid_shape(input_shape) || input_shape[0] != 1 || (memory_shape != nullptr && !valid_shape(memory_shape)))
        return set_error(err, ATH_ERR_INVALID, "ath_aoti_model_load: bad input or memory shape");
    try {
        return load_impl(path, device, input_shape, memory_shape, receptive_radius, zero_preserving, out, kind, err);
    } catch (const std::bad_alloc &) {
        set_kind(kind, ATH_LOAD_OUT_OF_MEMORY);
        return set_error(err, ATH_ERR_NOMEM, "cannot load AOTInductor package %s: out of memory", path);
    } catch (const c10::Error &e) {
        try {
            return set_error(err, ATH_ERR_MODEL, "cannot load AOTInductor package %s: %s", path,
                             one_line(e.what_without_backtrace()).c_str());
        } catch (...) {
        }
    } catch (const std::exception &e) {
        try {
            return set_error(err, ATH_ERR_MODEL, "cannot load AOTInductor package %s: %s", path,
                             one_line(e.what()).c_str());
        } catch (...) {
        }
    } catch (...) {
    }
    return set_error(err, ATH_ERR_MODEL, "cannot load AOTInductor package %s: unknown C++ exception", path);
}

}  // extern "C"
