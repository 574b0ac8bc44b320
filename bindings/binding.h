// N-API glue shared by the binding files: the native tensor handle, argument
// unwrapping with cheap guards, and backend dispatch.
//
// Validation with user-facing messages lives in lib/ (TypeScript). The guards
// here are the second line: they make sure that a caller who bypasses lib/
// gets a JS exception instead of a crash (wrong type, disposed tensor, a size
// that does not match the shape the kernel will read).
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "cpu/kernels.h"
#ifdef ENCSEC_HAVE_CUDA
#include "cuda/cuda_kernels.h"
#endif

namespace encsec {

// Bytes of a tensor, on the host or on a CUDA device. Shared between tensors
// that view the same data (reshape) and kept alive by running async work.
struct Storage {
  Device device;
  float* data = nullptr;
  size_t bytes = 0;
  Storage(Device dev, size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

class NativeTensor : public Napi::ObjectWrap<NativeTensor> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit NativeTensor(const Napi::CallbackInfo& info);
  ~NativeTensor() override;

  // A new JS tensor object with fresh (uninitialised) storage.
  static Napi::Object Create(Napi::Env env, const std::vector<int64_t>& shape, Device device);
  // A new JS tensor object viewing existing storage.
  static Napi::Object CreateView(Napi::Env env, const std::vector<int64_t>& shape,
                                 std::shared_ptr<Storage> storage);
  static NativeTensor* Unwrap(Napi::Object obj) { return Napi::ObjectWrap<NativeTensor>::Unwrap(obj); }

  float* data() const { return storage_->data; }
  int64_t numel() const { return numel_; }
  Device device() const { return storage_->device; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_[i]; }
  size_t ndim() const { return shape_.size(); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  bool disposed() const { return !storage_; }

 private:
  Napi::Value GetShape(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
  Napi::Value ToArray(const Napi::CallbackInfo& info);
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Reshape(const Napi::CallbackInfo& info);

  void Attach(const std::vector<int64_t>& shape, std::shared_ptr<Storage> storage);
  void Release();

  std::shared_ptr<Storage> storage_;
  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  int64_t external_bytes_ = 0;  // reported to V8 so that GC runs under native-memory pressure
};

// ------------------------------------------------------------ backends
// The backend new tensors are created on (chosen once at load, see addon.cpp).
Device current_device();
void set_current_device(Device d);
bool cuda_usable();                 // compiled with CUDA and a device answered
const std::string& backend_reason();  // why the current backend was chosen

// Throws a JS Error naming the CUDA failure.
void throw_cuda_error(Napi::Env env, int err, const char* op);

// ------------------------------------------------------------ arguments
// Each throws a JS TypeError/RangeError naming `name` on bad input.
NativeTensor* ArgTensor(const Napi::CallbackInfo& info, size_t i, const char* name);
NativeTensor* ArgTensorOrNull(const Napi::CallbackInfo& info, size_t i, const char* name);
int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t min, int64_t max);
// A tensor given as a value (an element of an array argument).
NativeTensor* ValueTensor(Napi::Env env, Napi::Value v, const std::string& name);
double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name);
bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name);

// Guards on an unwrapped tensor; throw a JS RangeError naming `name`.
void ExpectNumel(Napi::Env env, const NativeTensor* t, int64_t numel, const char* name);
void ExpectNdim(Napi::Env env, const NativeTensor* t, size_t ndim, const char* name);
void ExpectSameDevice(Napi::Env env, Device d, const NativeTensor* t, const char* name);
// Shape after checking ndim: dims as int (kernels take int), each in [1, 2^31).
int DimInt(Napi::Env env, const NativeTensor* t, size_t i, const char* name);

[[noreturn]] void ThrowType(Napi::Env env, const std::string& msg);
[[noreturn]] void ThrowRange(Napi::Env env, const std::string& msg);

// ------------------------------------------------------------ outputs
// An optional output: a new tensor when `need`, else JS null and a null pointer.
struct MaybeOut {
  Napi::Value value;
  float* ptr = nullptr;
};

inline MaybeOut Maybe(Napi::Env env, bool need, const std::vector<int64_t>& shape, Device dev) {
  MaybeOut m;
  if (need) {
    Napi::Object o = NativeTensor::Create(env, shape, dev);
    m.ptr = NativeTensor::Unwrap(o)->data();
    m.value = o;
  } else {
    m.value = env.Null();
  }
  return m;
}

inline Napi::Value Out(Napi::Env env, const std::vector<int64_t>& shape, Device dev, float** ptr) {
  Napi::Object o = NativeTensor::Create(env, shape, dev);
  *ptr = NativeTensor::Unwrap(o)->data();
  return o;
}

inline Napi::Array Tuple(Napi::Env env, std::initializer_list<Napi::Value> values) {
  Napi::Array a = Napi::Array::New(env, values.size());
  uint32_t i = 0;
  for (const auto& v : values) a.Set(i++, v);
  return a;
}

// A tensor of n elements on dev (skipped when t is null).
inline void ExpectVec(Napi::Env env, NativeTensor* t, int64_t n, Device dev, const char* name) {
  if (!t) return;
  ExpectNumel(env, t, n, name);
  ExpectSameDevice(env, dev, t, name);
}

// Registration of each binding file's functions (one call per file in addon.cpp).
void RegisterNnOps(Napi::Env env, Napi::Object exports);
void RegisterMathOps(Napi::Env env, Napi::Object exports);
void RegisterOptimOps(Napi::Env env, Napi::Object exports);
void RegisterInference(Napi::Env env, Napi::Object exports);
void RegisterDataOps(Napi::Env env, Napi::Object exports);
void RegisterRowOps(Napi::Env env, Napi::Object exports);

}  // namespace encsec

// Run op on the tensors' backend: encsec::op on the CPU, cuda_op on a device
// (whose error code becomes a JS Error). In a CPU-only build only the CPU path exists.
#ifdef ENCSEC_HAVE_CUDA
#define ENCSEC_DISPATCH(env, dev, op, ...)                          \
  do {                                                              \
    if ((dev) == ::encsec::Device::CUDA) {                          \
      int _encsec_err = ::cuda_##op(__VA_ARGS__);                   \
      if (_encsec_err) ::encsec::throw_cuda_error(env, _encsec_err, #op); \
    } else {                                                        \
      ::encsec::op(__VA_ARGS__);                                    \
    }                                                               \
  } while (0)
#else
#define ENCSEC_DISPATCH(env, dev, op, ...) ::encsec::op(__VA_ARGS__)
#endif
