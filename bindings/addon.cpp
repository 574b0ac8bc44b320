// Module entry: backend selection, `info`, thread control, and registration of
// every binding file's functions.
#include <cstdlib>
#include <string>

#include "alloc.h"
#include "binding.h"
#include "threadpool.h"

#ifndef ENCSEC_VERSION
#define ENCSEC_VERSION "0.0.0"
#endif
#ifndef ENCSEC_CUDA_STATUS
#define ENCSEC_CUDA_STATUS "built without CUDA"
#endif

namespace encsec {

namespace {
Device g_device = Device::CPU;
bool g_cuda_usable = false;
std::string g_cuda_reason;     // why CUDA is (not) usable
std::string g_backend_reason;  // why the current backend is in use
int g_cuda_devices = 0;

// Decide the backend once, quietly: CUDA when compiled in and a device
// answers, else the CPU, with the reason kept for `encsec info`.
// ENCSEC_DEVICE=cpu|cuda overrides; cuda where none is usable is an error
// raised when the module loads (the message says why).
void probe_cuda() {
#ifdef ENCSEC_HAVE_CUDA
  char msg[256] = {0};
  g_cuda_devices = cuda_device_count(msg, sizeof msg);
  if (g_cuda_devices > 0) {
    g_cuda_usable = true;
    g_cuda_reason = std::to_string(g_cuda_devices) + " CUDA device(s) found";
  } else {
    g_cuda_reason = std::string("no CUDA device: ") + (msg[0] ? msg : "none found");
  }
#else
  g_cuda_reason = ENCSEC_CUDA_STATUS;
#endif
}
}  // namespace

Device current_device() { return g_device; }
void set_current_device(Device d) { g_device = d; }
bool cuda_usable() { return g_cuda_usable; }
const std::string& backend_reason() { return g_backend_reason; }

void throw_cuda_error(Napi::Env env, int err, const char* op) {
#ifdef ENCSEC_HAVE_CUDA
  throw Napi::Error::New(env, std::string("CUDA error in ") + op + ": " + cuda_error_string(err));
#else
  throw Napi::Error::New(env, std::string("CUDA error in ") + op);
#endif
}

namespace {

// setDevice("cpu" | "cuda"): where new tensors are created.
Napi::Value SetDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) ThrowType(env, "device must be \"cpu\" or \"cuda\"");
  std::string d = info[0].As<Napi::String>().Utf8Value();
  if (d == "cpu") {
    g_device = Device::CPU;
    g_backend_reason = "selected: cpu";
  } else if (d == "cuda") {
    if (!g_cuda_usable) throw Napi::Error::New(env, "CUDA backend requested but not usable: " + g_cuda_reason);
    g_device = Device::CUDA;
    g_backend_reason = "selected: cuda";
  } else {
    ThrowRange(env, "device must be \"cpu\" or \"cuda\", got \"" + d + "\"");
  }
  return env.Undefined();
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", ENCSEC_VERSION);
  o.Set("backend", g_device == Device::CUDA ? "cuda" : "cpu");
  o.Set("reason", g_backend_reason);
  o.Set("cudaBuild", ENCSEC_CUDA_STATUS);
  o.Set("cudaStatus", g_cuda_reason);
  o.Set("cpuThreads", num_threads());
  Napi::Array devs = Napi::Array::New(env);
#ifdef ENCSEC_HAVE_CUDA
  for (int i = 0; i < g_cuda_devices; ++i) {
    char name[256] = {0};
    size_t mem = 0;
    cuda_device_info(i, name, sizeof name, &mem);
    Napi::Object d = Napi::Object::New(env);
    d.Set("index", i);
    d.Set("name", name);
    d.Set("memoryBytes", (double)mem);
    devs.Set(i, d);
  }
#endif
  o.Set("cudaDevices", devs);
#ifdef __AVX512F__
  o.Set("cpuKernels", "avx512");
#elif defined(__AVX2__)
  o.Set("cpuKernels", "avx2");
#else
  o.Set("cpuKernels", "generic");
#endif
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  set_num_threads(static_cast<int>(ArgInt(info, 0, "threads", 1, 256)));
  return info.Env().Undefined();
}

Napi::Value ClearCache(const Napi::CallbackInfo& info) {
  host_cache_clear();
  return info.Env().Undefined();
}

Napi::Value CacheBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), (double)host_cache_bytes());
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
#ifdef ENCSEC_HAVE_CUDA
  if (g_device == Device::CUDA) {
    int err = cuda_synchronize();
    if (err) throw_cuda_error(info.Env(), err, "synchronize");
  }
#endif
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  probe_cuda();
  const char* want = std::getenv("ENCSEC_DEVICE");
  std::string w = want ? want : "";
  if (w == "cuda") {
    if (!g_cuda_usable)
      throw Napi::Error::New(env, "ENCSEC_DEVICE=cuda but the CUDA backend is not usable: " + g_cuda_reason);
    g_device = Device::CUDA;
    g_backend_reason = "ENCSEC_DEVICE=cuda";
  } else if (w == "cpu") {
    g_device = Device::CPU;
    g_backend_reason = "ENCSEC_DEVICE=cpu";
  } else if (!w.empty()) {
    throw Napi::Error::New(env, "ENCSEC_DEVICE must be \"cpu\" or \"cuda\", got \"" + w + "\"");
  } else if (g_cuda_usable) {
    g_device = Device::CUDA;
    g_backend_reason = g_cuda_reason;
  } else {
    g_device = Device::CPU;
    g_backend_reason = g_cuda_reason;
  }
#ifdef ENCSEC_HAVE_CUDA
  if (g_device == Device::CUDA) cuda_set_device(0);
#endif

  exports.Set("NativeTensor", NativeTensor::Init(env));
  exports.Set("setDevice", Napi::Function::New(env, SetDevice, "setDevice"));
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("clearCache", Napi::Function::New(env, ClearCache, "clearCache"));
  exports.Set("cacheBytes", Napi::Function::New(env, CacheBytes, "cacheBytes"));
  exports.Set("synchronize", Napi::Function::New(env, Synchronize, "synchronize"));
  RegisterNnOps(env, exports);
  RegisterMathOps(env, exports);
  RegisterOptimOps(env, exports);
  RegisterInference(env, exports);
  RegisterDataOps(env, exports);
  RegisterRowOps(env, exports);
  return exports;
}

}  // namespace
}  // namespace encsec

static Napi::Object InitEncsec(Napi::Env env, Napi::Object exports) { return encsec::Init(env, exports); }

NODE_API_MODULE(encsec, InitEncsec)
