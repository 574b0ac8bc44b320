// Bindings of the row ops (native/cpu/rows.cpp, native/cpu/lsh.cpp): gather
// and its scatter-add backward, concatenation and slices along dim 0, per-row
// scaling, LSH codes. A tensor of any rank is [dim0, rest] to these ops.
// Indices come as an Int32Array and are range-checked here (one pass over
// them) even though lib/ checks them too: an index out of range would read or
// write outside the tensor.
#include "binding.h"

namespace encsec {

namespace {

// Elements per row of a tensor [dim0, ...] (its numel / dim0; 0 rows: the
// product of the trailing dims).
int64_t RowSize(const NativeTensor* t) {
  int64_t d = 1;
  for (size_t i = 1; i < t->ndim(); ++i) d *= t->dim(i);
  return d;
}

std::vector<int64_t> WithRows(const NativeTensor* t, int64_t rows) {
  std::vector<int64_t> shape = t->shape();
  shape[0] = rows;
  return shape;
}

void ExpectRows(Napi::Env env, const NativeTensor* t, const char* name) {
  if (t->ndim() < 1) ThrowRange(env, std::string(name) + " must have at least one dimension (rows)");
}

// indices: an Int32Array at argument i, every entry in [0, n).
Napi::Int32Array ArgIndices(const Napi::CallbackInfo& info, size_t i, int64_t n) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    ThrowType(env, "indices must be an Int32Array");
  Napi::Int32Array idx = info[i].As<Napi::Int32Array>();
  const int32_t* p = idx.Data();
  const size_t m = idx.ElementLength();
  for (size_t k = 0; k < m; ++k)
    if (p[k] < 0 || p[k] >= n)
      ThrowRange(env, "indices[" + std::to_string(k) + "] = " + std::to_string(p[k]) + " is outside [0, " +
                          std::to_string(n) + ")");
  return idx;
}

#ifdef ENCSEC_HAVE_CUDA
// A device copy of host indices for one launch. Freed into the caching
// allocator after the launch is queued: the next user of that block is
// ordered after it on the same (default) stream.
class DeviceIndices {
 public:
  DeviceIndices(Napi::Env env, const int32_t* host, size_t m) : bytes_(m * sizeof(int32_t)) {
    if (m == 0) return;
    int err = cuda_malloc(&ptr_, bytes_);
    if (!err) err = cuda_memcpy_h2d(ptr_, host, bytes_);
    if (err) {
      if (ptr_) cuda_free(ptr_, bytes_);
      ptr_ = nullptr;
      throw_cuda_error(env, err, "indices upload");
    }
  }
  ~DeviceIndices() {
    if (ptr_) cuda_free(ptr_, bytes_);
  }
  const int32_t* get() const { return static_cast<const int32_t*>(ptr_); }

 private:
  size_t bytes_;
  void* ptr_ = nullptr;
};
#endif

// gatherRows(x [n, ...], indices Int32Array [m]) -> [m, ...]
Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* x = ArgTensor(info, 0, "x");
  ExpectRows(env, x, "x");
  Napi::Int32Array idx = ArgIndices(info, 1, x->dim(0));
  const int64_t m = static_cast<int64_t>(idx.ElementLength()), d = RowSize(x);
  float* out;
  Napi::Value o = Out(env, WithRows(x, m), x->device(), &out);
  if (m == 0 || d == 0) return o;
#ifdef ENCSEC_HAVE_CUDA
  if (x->device() == Device::CUDA) {
    DeviceIndices di(env, idx.Data(), idx.ElementLength());
    int err = cuda_gather_rows_forward(out, x->data(), di.get(), m, d);
    if (err) throw_cuda_error(env, err, "gather_rows_forward");
    return o;
  }
#endif
  gather_rows_forward(out, x->data(), idx.Data(), m, d);
  return o;
}

// gatherRowsBackward(dout [m, ...], indices Int32Array [m], n) -> dx [n, ...]
Napi::Value GatherRowsBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* dout = ArgTensor(info, 0, "dout");
  ExpectRows(env, dout, "dout");
  const int64_t n = ArgInt(info, 2, "rows", 0, (int64_t(1) << 31) - 1);
  Napi::Int32Array idx = ArgIndices(info, 1, n);
  const int64_t m = static_cast<int64_t>(idx.ElementLength()), d = RowSize(dout);
  if (dout->dim(0) != m) ThrowRange(env, "dout has " + std::to_string(dout->dim(0)) + " rows but indices has " + std::to_string(m) + " entries");
  float* dx;
  Napi::Value o = Out(env, WithRows(dout, n), dout->device(), &dx);
  if (n == 0 || d == 0) return o;
#ifdef ENCSEC_HAVE_CUDA
  if (dout->device() == Device::CUDA) {
    DeviceIndices di(env, idx.Data(), idx.ElementLength());
    int err = cuda_gather_rows_backward(dx, dout->data(), di.get(), n, m, d);
    if (err) throw_cuda_error(env, err, "gather_rows_backward");
    return o;
  }
#endif
  gather_rows_backward(dx, dout->data(), idx.Data(), n, m, d);
  return o;
}

// concatRows(tensors [n_k, ...rest]) -> [sum n_k, ...rest]
Napi::Value ConcatRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) ThrowType(env, "tensors must be an array of tensors");
  Napi::Array arr = info[0].As<Napi::Array>();
  const uint32_t count = arr.Length();
  if (count == 0) ThrowRange(env, "tensors is empty");
  if (count > (1u << 20)) ThrowRange(env, "tensors has too many entries");
  std::vector<NativeTensor*> ts(count);
  std::vector<const float*> parts(count);
  std::vector<int64_t> rows(count);
  int64_t total = 0;
  for (uint32_t k = 0; k < count; ++k) {
    const std::string name = "tensors[" + std::to_string(k) + "]";
    ts[k] = ValueTensor(env, arr.Get(k), name);
    ExpectRows(env, ts[k], name.c_str());
    if (k > 0) {
      if (ts[k]->ndim() != ts[0]->ndim()) ThrowRange(env, name + " has a different number of dimensions than tensors[0]");
      for (size_t i = 1; i < ts[0]->ndim(); ++i)
        if (ts[k]->dim(i) != ts[0]->dim(i)) ThrowRange(env, name + " differs from tensors[0] in dimension " + std::to_string(i));
      ExpectSameDevice(env, ts[0]->device(), ts[k], name.c_str());
    }
    parts[k] = ts[k]->data();
    rows[k] = ts[k]->dim(0);
    total += rows[k];
  }
  const int64_t d = RowSize(ts[0]);
  float* out;
  Napi::Value o = Out(env, WithRows(ts[0], total), ts[0]->device(), &out);
  if (total == 0 || d == 0) return o;
  ENCSEC_DISPATCH(env, ts[0]->device(), concat_rows_forward, out, parts.data(), rows.data(), static_cast<int>(count), d);
  return o;
}

// sliceRows(x [n, ...], start, end) -> x[start:end] (a copy), 0 <= start <= end <= n
Napi::Value SliceRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* x = ArgTensor(info, 0, "x");
  ExpectRows(env, x, "x");
  const int64_t n = x->dim(0);
  const int64_t start = ArgInt(info, 1, "start", 0, n);
  const int64_t end = ArgInt(info, 2, "end", start, n);
  const int64_t rows = end - start, d = RowSize(x);
  float* out;
  Napi::Value o = Out(env, WithRows(x, rows), x->device(), &out);
  if (rows == 0 || d == 0) return o;
  // One part at an offset: the concatenation kernel is the copy.
  const float* from = x->data() + start * d;
  ENCSEC_DISPATCH(env, x->device(), concat_rows_forward, out, &from, &rows, 1, d);
  return o;
}

// scaleRows(x [n, d], s [n]) -> row r of x times s[r]
Napi::Value ScaleRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* x = ArgTensor(info, 0, "x");
  ExpectNdim(env, x, 2, "x");
  NativeTensor* s = ArgTensor(info, 1, "s");
  ExpectVec(env, s, x->dim(0), x->device(), "s");
  float* out;
  Napi::Value o = Out(env, x->shape(), x->device(), &out);
  if (x->numel() == 0) return o;
  ENCSEC_DISPATCH(env, x->device(), scale_rows_forward, out, x->data(), s->data(), x->dim(0), x->dim(1));
  return o;
}

// lshCodes(proj [n, F*P], families F, planes P) -> [n, F], codes in [0, 2^P)
Napi::Value LshCodes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* proj = ArgTensor(info, 0, "proj");
  ExpectNdim(env, proj, 2, "proj");
  const int F = static_cast<int>(ArgInt(info, 1, "families", 1, 1 << 16));
  const int P = static_cast<int>(ArgInt(info, 2, "planes", 1, 16));
  if (proj->dim(1) != static_cast<int64_t>(F) * P)
    ThrowRange(env, "proj has " + std::to_string(proj->dim(1)) + " columns, expected families*planes = " +
                        std::to_string(static_cast<int64_t>(F) * P));
  const int64_t n = proj->dim(0);
  float* out;
  Napi::Value o = Out(env, {n, F}, proj->device(), &out);
  if (n == 0) return o;
  ENCSEC_DISPATCH(env, proj->device(), lsh_codes_forward, out, proj->data(), n, F, P);
  return o;
}

}  // namespace

void RegisterRowOps(Napi::Env env, Napi::Object exports) {
  exports.Set("gatherRows", Napi::Function::New(env, GatherRows, "gatherRows"));
  exports.Set("gatherRowsBackward", Napi::Function::New(env, GatherRowsBackward, "gatherRowsBackward"));
  exports.Set("concatRows", Napi::Function::New(env, ConcatRows, "concatRows"));
  exports.Set("sliceRows", Napi::Function::New(env, SliceRows, "sliceRows"));
  exports.Set("scaleRows", Napi::Function::New(env, ScaleRows, "scaleRows"));
  exports.Set("lshCodes", Napi::Function::New(env, LshCodes, "lshCodes"));
}

}  // namespace encsec
