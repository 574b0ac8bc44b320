// The native tensor handle (NativeTensor) and the argument guards.
#include <cmath>
#include <cstring>
#include <limits>
#include <new>

#include "alloc.h"
#include "binding.h"

namespace encsec {

namespace {

struct AddonData {
  Napi::FunctionReference tensor_ctor;
};

AddonData* addon_data(Napi::Env env) {
  AddonData* d = env.GetInstanceData<AddonData>();
  if (!d) {
    d = new AddonData();
    env.SetInstanceData<AddonData>(d);
  }
  return d;
}

int64_t checked_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / 4 / d) return -1;
    n *= d;
  }
  return n;
}

// Reads a JS array of non-negative integers (a shape).
std::vector<int64_t> ReadShape(Napi::Env env, Napi::Value v, const char* name) {
  if (!v.IsArray()) ThrowType(env, std::string(name) + " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > 8) ThrowRange(env, std::string(name) + " has more than 8 dimensions");
  std::vector<int64_t> shape(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) ThrowType(env, std::string(name) + " must be an array of integers");
    double d = e.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != std::floor(d) || d > 2147483647.0)
      ThrowRange(env, std::string(name) + "[" + std::to_string(i) + "] must be an integer in [0, 2^31)");
    shape[i] = static_cast<int64_t>(d);
  }
  return shape;
}

}  // namespace

// ------------------------------------------------------------ Storage

Storage::Storage(Device dev, size_t nbytes) : device(dev), bytes(nbytes) {
  if (dev == Device::CUDA) {
#ifdef ENCSEC_HAVE_CUDA
    void* p = nullptr;
    int err = cuda_malloc(&p, nbytes ? nbytes : 4);
    if (err) throw std::runtime_error(std::string("CUDA allocation of ") + std::to_string(nbytes) +
                                      " bytes failed: " + cuda_error_string(err));
    data = static_cast<float*>(p);
#else
    throw std::runtime_error("built without CUDA");
#endif
  } else {
    data = static_cast<float*>(host_alloc(nbytes ? nbytes : 4));
  }
}

Storage::~Storage() {
  if (device == Device::CUDA) {
#ifdef ENCSEC_HAVE_CUDA
    cuda_free(data, bytes ? bytes : 4);
#endif
  } else {
    host_free(data, bytes ? bytes : 4);
  }
}

// ------------------------------------------------------------ NativeTensor

Napi::Function NativeTensor::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(
      env, "NativeTensor",
      {
          InstanceAccessor<&NativeTensor::GetShape>("shape"),
          InstanceAccessor<&NativeTensor::GetDevice>("device"),
          InstanceAccessor<&NativeTensor::GetDisposed>("disposed"),
          InstanceMethod<&NativeTensor::ToArray>("toArray"),
          InstanceMethod<&NativeTensor::CopyFrom>("copyFrom"),
          InstanceMethod<&NativeTensor::Dispose>("dispose"),
          InstanceMethod<&NativeTensor::Reshape>("reshape"),
      });
  addon_data(env)->tensor_ctor = Napi::Persistent(ctor);
  return ctor;
}

// new NativeTensor(shape: number[], data?: Float32Array): host data is copied in.
// With no arguments (internal use) the object is created empty and attached by Create.
NativeTensor::NativeTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTensor>(info) {
  Napi::Env env = info.Env();
  if (info.Length() == 0) return;
  std::vector<int64_t> shape = ReadShape(env, info[0], "shape");
  int64_t n = checked_numel(shape);
  if (n < 0) ThrowRange(env, "shape is too large");
  auto storage = std::make_shared<Storage>(current_device(), static_cast<size_t>(n) * sizeof(float));
  Attach(shape, storage);
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      ThrowType(env, "data must be a Float32Array");
    Napi::Float32Array src = info[1].As<Napi::Float32Array>();
    if (static_cast<int64_t>(src.ElementLength()) != n)
      ThrowRange(env, "data has " + std::to_string(src.ElementLength()) + " elements but shape needs " +
                          std::to_string(n));
    if (device() == Device::CUDA) {
#ifdef ENCSEC_HAVE_CUDA
      int err = cuda_memcpy_h2d(data(), src.Data(), n * sizeof(float));
      if (err) throw_cuda_error(env, err, "copy to device");
#endif
    } else if (n) {
      std::memcpy(data(), src.Data(), n * sizeof(float));
    }
  }
}

NativeTensor::~NativeTensor() { Release(); }

void NativeTensor::Attach(const std::vector<int64_t>& shape, std::shared_ptr<Storage> storage) {
  shape_ = shape;
  numel_ = checked_numel(shape);
  storage_ = std::move(storage);
  external_bytes_ = numel_ * static_cast<int64_t>(sizeof(float));
  if (storage_->device == Device::CPU) Napi::MemoryManagement::AdjustExternalMemory(Env(), external_bytes_);
  else external_bytes_ = 0;
}

void NativeTensor::Release() {
  if (external_bytes_) {
    Napi::MemoryManagement::AdjustExternalMemory(Env(), -external_bytes_);
    external_bytes_ = 0;
  }
  storage_.reset();
}

Napi::Object NativeTensor::Create(Napi::Env env, const std::vector<int64_t>& shape, Device device) {
  int64_t n = checked_numel(shape);
  if (n < 0) ThrowRange(env, "shape is too large");
  return CreateView(env, shape, std::make_shared<Storage>(device, static_cast<size_t>(n) * sizeof(float)));
}

Napi::Object NativeTensor::CreateView(Napi::Env env, const std::vector<int64_t>& shape,
                                      std::shared_ptr<Storage> storage) {
  Napi::Object obj = addon_data(env)->tensor_ctor.New({});
  Unwrap(obj)->Attach(shape, std::move(storage));
  return obj;
}

Napi::Value NativeTensor::GetShape(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), shape_.size());
  for (size_t i = 0; i < shape_.size(); ++i) a.Set(i, Napi::Number::New(info.Env(), (double)shape_[i]));
  return a;
}

Napi::Value NativeTensor::GetDevice(const Napi::CallbackInfo& info) {
  if (!storage_) return Napi::String::New(info.Env(), "disposed");
  return Napi::String::New(info.Env(), device() == Device::CUDA ? "cuda" : "cpu");
}

Napi::Value NativeTensor::GetDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !storage_);
}

Napi::Value NativeTensor::ToArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!storage_) ThrowType(env, "tensor has been disposed");
  Napi::Float32Array out = Napi::Float32Array::New(env, numel_);
  if (device() == Device::CUDA) {
#ifdef ENCSEC_HAVE_CUDA
    int err = cuda_memcpy_d2h(out.Data(), data(), numel_ * sizeof(float));
    if (err) throw_cuda_error(env, err, "copy to host");
#endif
  } else if (numel_) {
    std::memcpy(out.Data(), data(), numel_ * sizeof(float));
  }
  return out;
}

// copyFrom(src: NativeTensor): overwrite this tensor's data with src's (same numel).
Napi::Value NativeTensor::CopyFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!storage_) ThrowType(env, "tensor has been disposed");
  NativeTensor* src = ArgTensor(info, 0, "src");
  ExpectNumel(env, src, numel_, "src");
  if (src->device() != device()) ThrowRange(env, "src is on another device");
  if (src->data() == data() || numel_ == 0) return env.Undefined();
  if (device() == Device::CUDA) {
#ifdef ENCSEC_HAVE_CUDA
    int err = cuda_memcpy_d2d(data(), src->data(), numel_ * sizeof(float));
    if (err) throw_cuda_error(env, err, "copy");
#endif
  } else {
    std::memmove(data(), src->data(), numel_ * sizeof(float));
  }
  return env.Undefined();
}

Napi::Value NativeTensor::Dispose(const Napi::CallbackInfo& info) {
  Release();
  return info.Env().Undefined();
}

// reshape(shape): a new handle on the same storage (same number of elements).
Napi::Value NativeTensor::Reshape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!storage_) ThrowType(env, "tensor has been disposed");
  std::vector<int64_t> shape = ReadShape(env, info[0], "shape");
  if (checked_numel(shape) != numel_) ThrowRange(env, "shape does not match the number of elements");
  return CreateView(env, shape, storage_);
}

// ------------------------------------------------------------ arguments

void ThrowType(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
void ThrowRange(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }

NativeTensor* ArgTensorOrNull(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return nullptr;
  if (!info[i].IsObject()) ThrowType(env, std::string(name) + " must be a tensor");
  Napi::Object obj = info[i].As<Napi::Object>();
  if (!obj.InstanceOf(addon_data(env)->tensor_ctor.Value()))
    ThrowType(env, std::string(name) + " must be a tensor");
  NativeTensor* t = NativeTensor::Unwrap(obj);
  if (t->disposed()) ThrowType(env, std::string(name) + " has been disposed");
  return t;
}

NativeTensor* ValueTensor(Napi::Env env, Napi::Value v, const std::string& name) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_data(env)->tensor_ctor.Value()))
    ThrowType(env, name + " must be a tensor");
  NativeTensor* t = NativeTensor::Unwrap(v.As<Napi::Object>());
  if (t->disposed()) ThrowType(env, name + " has been disposed");
  return t;
}

NativeTensor* ArgTensor(const Napi::CallbackInfo& info, size_t i, const char* name) {
  NativeTensor* t = ArgTensorOrNull(info, i, name);
  if (!t) ThrowType(info.Env(), std::string(name) + " must be a tensor");
  return t;
}

int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t min, int64_t max) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsNumber()) ThrowType(env, std::string(name) + " must be an integer");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d == std::floor(d)) || d < (double)min || d > (double)max)
    ThrowRange(env, std::string(name) + " must be an integer in [" + std::to_string(min) + ", " +
                        std::to_string(max) + "]");
  return static_cast<int64_t>(d);
}

double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsNumber()) ThrowType(env, std::string(name) + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) ThrowRange(env, std::string(name) + " must be finite");
  return d;
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsBoolean()) ThrowType(info.Env(), std::string(name) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

void ExpectNumel(Napi::Env env, const NativeTensor* t, int64_t numel, const char* name) {
  if (t->numel() != numel)
    ThrowRange(env, std::string(name) + " has " + std::to_string(t->numel()) + " elements, expected " +
                        std::to_string(numel));
}

void ExpectNdim(Napi::Env env, const NativeTensor* t, size_t ndim, const char* name) {
  if (t->ndim() != ndim)
    ThrowRange(env, std::string(name) + " must have " + std::to_string(ndim) + " dimensions, got " +
                        std::to_string(t->ndim()));
}

void ExpectSameDevice(Napi::Env env, Device d, const NativeTensor* t, const char* name) {
  if (t && t->device() != d) ThrowRange(env, std::string(name) + " is on another device");
}

int DimInt(Napi::Env env, const NativeTensor* t, size_t i, const char* name) {
  if (i >= t->ndim()) ThrowRange(env, std::string(name) + " has too few dimensions");
  int64_t d = t->dim(i);
  if (d < 1 || d > std::numeric_limits<int>::max())
    ThrowRange(env, std::string(name) + " dimension " + std::to_string(i) + " must be at least 1");
  return static_cast<int>(d);
}

}  // namespace encsec
