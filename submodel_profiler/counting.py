"""Our counting rules: float ops for the op types TF's profiler skips, and MACs.

Conventions (stated once, used everywhere):

- `tf_flops`: exactly what TensorFlow's profiler registers per op type (`RegisterStatistics(...,
  "flops")`), function-call bodies included (flops.py). A multiply-add is 2 float ops.
- `flops` in the "complete" convention (the default): TF's number wherever TF registers one, and
  the rules in `RULES` below for what TF skips; `While` bodies × their static trip count, the
  largest `If`/`Case` branch, and only the ops that run (nodes no output depends on are left out).
- `macs`: multiply-accumulates of contraction ops only (`MAC_RULES`: convolutions, matmuls,
  einsums), the figure papers publish as "MAdds". Elementwise work has no MACs.

Every rule is a small pure function of static shapes (and attributes), with its rule in its
docstring. Nothing is registered into TF's global statistics registry. Op types that are neither
registered by TF, nor covered here, nor data movement (`NON_ARITHMETIC_OPS`) are reported as
uncounted by name, never silently 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

COUNTINGS = ("complete", "tf")
DEFAULT_COUNTING = "complete"

COUNTING_CONVENTIONS = {
    "complete": (
        "Float ops (complete convention): TF's profiler count wherever TF registers one "
        "(a multiply-add = 2 float ops), our rules for what TF skips (einsum, elementwise math, "
        "reductions, While bodies × trip count, largest If/Case branch; docs/counting.md), "
        "ops no output depends on left out. MACs: multiply-accumulates of contractions only."
    ),
    "tf": (
        "Float ops (tf convention): exactly TensorFlow's profiler, a multiply-add = 2 float ops; "
        "op types TF does not count (Relu, Sigmoid, Einsum, While bodies, ...) add 0, so counts "
        "are lower bounds. MACs: multiply-accumulates of contractions only."
    ),
}


@dataclass(frozen=True)
class Count:
    """Float ops in both conventions, MACs and op bytes of some ops; adds up."""

    flops: int = 0  # complete convention
    tf_flops: int = 0  # TF's profiler
    macs: int = 0
    op_bytes: int = 0  # bytes the ops read and write, each op on its own (`op_bytes`)

    def __add__(self, other: Count) -> Count:
        return Count(
            self.flops + other.flops,
            self.tf_flops + other.tf_flops,
            self.macs + other.macs,
            self.op_bytes + other.op_bytes,
        )

    def __sub__(self, other: Count) -> Count:
        return Count(
            self.flops - other.flops,
            self.tf_flops - other.tf_flops,
            self.macs - other.macs,
            self.op_bytes - other.op_bytes,
        )

    def __bool__(self) -> bool:
        return bool(self.flops or self.tf_flops or self.macs or self.op_bytes)

    def of(self, counting: str) -> int:
        """`flops` as `counting` ("complete" or "tf") means it."""
        return self.tf_flops if counting == "tf" else self.flops


ZERO = Count()

# Which op types are arithmetic (one rule, used by every measurement that needs it):
#
#   An op is data movement when every output element is (a) a copy of one input element, whole,
#   in part (`Real`, `Imag`, `Complex` pairs two) or converted to another dtype (`Cast`), placed
#   by indices, masks, offsets or shapes the op is given, or (b) a constant or a value generated
#   from shapes, indices, scalars or a seed alone (`Fill`, `Range`, `OneHot`, random numbers),
#   or (c) booleans or bits computed from booleans or bits (`LogicalAnd`, `Any`, `BitwiseAnd`):
#   no float arithmetic on the model's values. Checks (`Assert`, `CheckNumerics`) and graph
#   plumbing produce no value. Every other op is arithmetic, including an op that compares
#   values to decide what it outputs (`TopKV2`, `Unique`: comparisons count, as TF counts
#   `Greater`, `ArgMax` and we count `Max`) and one that combines the values it places
#   (`ScatterNd` and `UnsortedSegmentSum` add, `TensorScatterMax` compares): these have rules
#   in `RULES`. A scatter that overwrites (`TensorScatterUpdate`) is data movement.
#
# Data movement is neither counted nor reported as uncounted; an arithmetic op type without a
# rule (and without TF's count) is reported as uncounted, and the verdict says "lower bound".
NON_ARITHMETIC_OPS = frozenset(
    """
    Placeholder PlaceholderV2 PlaceholderWithDefault Const Identity IdentityN NoOp Snapshot
    ReadVariableOp VarHandleOp AssignVariableOp VariableShape VarIsInitializedOp _Arg _Retval
    Enter Exit Merge Switch NextIteration LoopCond EnsureShape CheckNumerics CheckNumericsV2
    Assert Print PrintV2 Copy DeepCopy GuaranteeConst StopGradient PreventGradient
    Reshape Shape ShapeN Size Rank Squeeze ExpandDims BroadcastArgs BroadcastGradientArgs
    ConcatOffset DataFormatDimMap DataFormatVecPermute InvertPermutation
    StridedSlice Slice XlaDynamicSlice StridedSliceGrad TensorStridedSliceUpdate
    StridedSliceAssign ResourceStridedSliceAssign XlaDynamicUpdateSlice InplaceUpdate
    ConcatV2 Concat ParallelConcat Pack Unpack Split SplitV Tile BroadcastTo Transpose
    Pad PadV2 MirrorPad XlaPad Roll ReverseV2 Reverse ReverseSequence
    DepthToSpace SpaceToDepth SpaceToBatch SpaceToBatchND BatchToSpace BatchToSpaceND
    ExtractImagePatches ExtractVolumePatches ResizeNearestNeighbor
    GatherV2 GatherNd Gather ResourceGather ResourceGatherNd XlaGather CollectiveGather
    CollectiveGatherV2 DynamicPartition DynamicStitch ParallelDynamicStitch
    TensorScatterUpdate ScatterNdUpdate ScatterUpdate ResourceScatterUpdate
    ResourceScatterNdUpdate Select SelectV2 Where MatrixBandPart BatchMatrixBandPart
    Diag DiagPart MatrixDiag MatrixDiagV2 MatrixDiagV3 MatrixDiagPart MatrixDiagPartV2
    MatrixDiagPartV3 MatrixSetDiag MatrixSetDiagV2 MatrixSetDiagV3 BatchMatrixDiag
    BatchMatrixDiagPart BatchMatrixSetDiag
    Cast Bitcast Complex Real Imag
    Fill Empty ZerosLike OnesLike Range LinSpace OneHot
    RandomUniform RandomUniformInt RandomStandardNormal TruncatedNormal RandomShuffle
    StatelessRandomUniform StatelessRandomUniformV2 StatelessRandomUniformInt
    StatelessRandomUniformIntV2 StatelessRandomUniformFullInt StatelessRandomUniformFullIntV2
    StatelessRandomNormal StatelessRandomNormalV2 StatelessTruncatedNormal
    StatelessTruncatedNormalV2 StatelessRandomGetKeyCounter StatelessRandomGetAlg
    StatelessRandomGetKeyCounterAlg StatelessShuffle
    LogicalAnd LogicalOr LogicalNot Any All BitwiseAnd BitwiseOr BitwiseXor Invert LeftShift
    RightShift PopulationCount
    TensorListReserve TensorListFromTensor TensorListGetItem TensorListSetItem TensorListStack
    TensorListElementShape TensorListLength TensorListPushBack TensorListPopBack
    TensorListConcat TensorListConcatV2 TensorListConcatLists TensorListSplit TensorListResize
    TensorListGather TensorListScatter TensorListScatterV2 TensorListScatterIntoExistingList
    TensorListPushBackBatch EmptyTensorList
    """.split()
)

# --- bytes: what each op reads and writes -----------------------------------------------------

# Op types whose output shares its input's buffer (TF forwards it): they allocate nothing (the
# liveness rule, memory.py) and move no data (op bytes).
ALIASING_OPS = frozenset(
    """
    Identity IdentityN Reshape Squeeze ExpandDims Snapshot StopGradient PreventGradient
    EnsureShape CheckNumerics Bitcast PlaceholderWithDefault
    """.split()
)

# Op types whose kernel moves no tensor data: the aliasing ops, graph plumbing and metadata.
# They add no op bytes.
NO_TRAFFIC_OPS = ALIASING_OPS | frozenset(
    """
    Placeholder Const NoOp VarHandleOp ReadVariableOp _Arg _Retval Shape ShapeN Size Rank
    BroadcastArgs Enter Exit Merge Switch NextIteration LoopCond
    """.split()
)


def static_bytes(tensor) -> int | None:
    """elements × dtype size of a tensor's static shape; None when the shape is not static or
    the dtype has no fixed size (strings, handles). # tensor: tf.Tensor"""
    n, size = tensor.shape.num_elements(), tensor.dtype.size
    return None if n is None or not size else n * size


def tensor_bytes(tensor) -> int | None:
    """Bytes of a tensor at its dtype (`static_bytes`); 0 for a resource or variant handle (a
    variable's or a TensorList's: the data it stands for is counted where an op reads or writes
    it as a tensor) and for a string; None when its shape is not static. # tensor: tf.Tensor"""
    if tensor.dtype.name in ("resource", "variant", "string"):
        return 0
    return static_bytes(tensor)


def op_bytes(op) -> int | None:
    """Op bytes of one op: every input read once and every output written once, at their
    dtypes, as if the op ran on its own (no fusion; XLA's HloCostAnalysis counts an op's bytes
    the same way); 0 for NO_TRAFFIC_OPS; None when a shape is not static."""
    if op.type in NO_TRAFFIC_OPS:
        return 0
    sizes = [tensor_bytes(t) for t in (*op.inputs, *op.outputs)]
    return None if any(b is None for b in sizes) else sum(sizes)


# Function-calling op types with their own rule in flops.py (bodies counted there).
CALL_OP_TYPES = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
WHILE_OP_TYPES = frozenset({"While", "StatelessWhile"})
BRANCH_OP_TYPES = frozenset({"If", "StatelessIf", "Case", "StatelessCase"})


def elements(shape) -> int:
    """Number of elements of a static shape (a tuple of ints)."""
    return math.prod(shape)


# --- float-op rules for op types TF's profiler skips ------------------------------------------

# Elementwise math: 1 float op per output element.
ELEMENTWISE_OPS = frozenset(
    """
    Relu Relu6 Elu Selu LeakyRelu Gelu Tanh Sigmoid Exp Expm1 Log1p Erf Erfc Sqrt Softplus
    Softsign Abs Sign Floor Ceil Round Rint Sin Cos Tan Asin Acos Atan Sinh Cosh Asinh Acosh
    Atanh Atan2 Inv Reciprocal FloorDiv FloorMod Mod TruncateDiv TruncateMod DivNoNan Div
    MulNoNan Xdivy Xlogy Xlog1py IsNan IsInf IsFinite Lgamma Digamma ClipByValue Conj Angle
    ComplexAbs
    """.split()
)

# Gradients of elementwise ops (the training step's backward): 1 float op per output element,
# the convention of the elementwise ops themselves (TanhGrad's dy·(1 − y²) is one op, not
# three, as Tanh is one).
ELEMENTWISE_GRADIENT_OPS = frozenset(
    """
    ReluGrad Relu6Grad EluGrad SeluGrad LeakyReluGrad SoftplusGrad SoftsignGrad TanhGrad
    SigmoidGrad SqrtGrad RsqrtGrad ReciprocalGrad InvGrad
    """.split()
)

# Variable updates that combine (an optimizer's `w -= lr·g`, `m += ...`): 1 float op per element
# of the value added or subtracted; a plain AssignVariableOp is a copy.
VARIABLE_UPDATE_OPS = frozenset({"AssignAddVariableOp", "AssignSubVariableOp"})

# Reductions: 1 float op per input element.
REDUCTION_OPS = frozenset(
    {"Max", "Min", "Prod", "EuclideanNorm", "Cumsum", "Cumprod", "Cummax", "Cummin"}
)

# Softmax-like: TF counts Softmax as 5 per element (max, subtract, exp, sum, divide); the same
# for its log form.
SOFTMAX_LIKE_OPS = frozenset({"LogSoftmax"})

# Batch norm as one op (inference): a scale and a shift per element once the statistics are
# folded (fvcore's convention for an affine batch norm).
BATCH_NORM_OPS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})

# Contractions TF registers no count for: 2 float ops per MAC, as TF counts Conv2D.
# The backward's depthwise and 3-D gradients: each forward multiply-add has one here too.
UNREGISTERED_CONTRACTIONS = frozenset(
    {
        "Conv3DBackpropInputV2",
        "Conv3DBackpropFilterV2",
        "DepthwiseConv2dNativeBackpropInput",
        "DepthwiseConv2dNativeBackpropFilter",
    }
)

# Filter gradients (input, filter_sizes, out_backprop): the forward convolution's MACs, the
# filter's shape read from their output.
FILTER_GRADIENT_OPS = frozenset(
    {"Conv2DBackpropFilter", "Conv3DBackpropFilterV2", "DepthwiseConv2dNativeBackpropFilter"}
)

# Pooling TF skips (TF counts AvgPool and MaxPool): window size per output element.
POOL_3D_OPS = frozenset({"AvgPool3D", "MaxPool3D"})


def elementwise_flops(output_shape) -> int:
    """Elementwise math: 1 per output element. # output: [...]"""
    return elements(output_shape)


def reduction_flops(input_shape) -> int:
    """Reductions TF skips (Max, Min, Prod, Cumsum, ...): 1 per input element. # input: [...]"""
    return elements(input_shape)


def softmax_like_flops(input_shape) -> int:
    """LogSoftmax: 5 per element, as TF counts Softmax. # input: [..., classes]"""
    return 5 * elements(input_shape)


def batch_norm_flops(input_shape) -> int:
    """FusedBatchNorm (inference): 2 per element, y = x·scale' + shift'. # x: [N, H, W, C]"""
    return 2 * elements(input_shape)


def pool_3d_flops(output_shape, ksize) -> int:
    """AvgPool3D/MaxPool3D: window volume per output element. # ksize: [1, kd, kh, kw, 1]"""
    return elements(output_shape) * elements(ksize)


# Image resampling: a weighted sum of taps per output element, a multiply-add (2 float ops)
# per tap; the weights and source indices are computed once per output row and column, not
# per element, and are not counted. fvcore counts upsample_bilinear2d as 4 per output element
# in its convention of 1 flop per multiply-add: the same 4 taps.
RESIZE_TAPS = {"ResizeBilinear": 4, "ResizeBicubic": 16}

# ScaleAndTranslate's kernels and their radii (tensorflow/core/kernels/image/sampling_kernels.h).
SAMPLING_KERNEL_RADII = {
    "lanczos1": 1.0,
    "lanczos3": 3.0,
    "lanczos5": 5.0,
    "gaussian": 1.5,
    "box": 1.0,
    "triangle": 1.0,
    "keyscubic": 2.0,
    "mitchellcubic": 2.0,
}

# Fourier transforms: op type -> (transformed dims, whether the real signal is half of it).
FFT_OPS = {
    "FFT": (1, False),
    "IFFT": (1, False),
    "FFT2D": (2, False),
    "IFFT2D": (2, False),
    "FFT3D": (3, False),
    "IFFT3D": (3, False),
    "RFFT": (1, True),
    "IRFFT": (1, True),
    "RFFT2D": (2, True),
    "IRFFT2D": (2, True),
    "RFFT3D": (3, True),
    "IRFFT3D": (3, True),
}

# Segment reductions: 1 per element of `data` (input 0), as our reductions count.
SEGMENT_OPS = frozenset(
    """
    SegmentSum SegmentSumV2 SegmentProd SegmentProdV2 SegmentMax SegmentMaxV2 SegmentMin
    SegmentMinV2 SegmentMean UnsortedSegmentSum UnsortedSegmentProd UnsortedSegmentMax
    UnsortedSegmentMin
    """.split()
)

# Scatters that combine each update with what is there: op type -> index of `updates`.
SCATTER_COMBINE_OPS = {
    "ScatterNd": 1,  # adds duplicates: each update is added into a zero tensor
    **dict.fromkeys(
        """
        TensorScatterAdd TensorScatterSub TensorScatterMax TensorScatterMin
        ScatterNdNonAliasingAdd ScatterNdAdd ScatterNdSub ScatterNdMax ScatterNdMin ScatterAdd
        ScatterSub ScatterMul ScatterDiv ScatterMax ScatterMin ResourceScatterAdd
        ResourceScatterSub ResourceScatterMul ResourceScatterDiv ResourceScatterMax
        ResourceScatterMin ResourceScatterNdAdd ResourceScatterNdSub ResourceScatterNdMax
        ResourceScatterNdMin
        """.split(),
        2,
    ),
}

# Selections that compare values: top-k and unique elements.
TOP_K_OPS = frozenset({"TopKV2", "TopK"})
UNIQUE_OPS = frozenset({"Unique", "UniqueV2", "UniqueWithCounts", "UniqueWithCountsV2"})


def resize_flops(output_shape, taps: int) -> int:
    """ResizeBilinear (4 taps), ResizeBicubic (16 taps), CropAndResize (bilinear, 4 taps): a
    multiply-add per tap, 2 · taps per output element. # output: [N, H_out, W_out, C]"""
    return 2 * taps * elements(output_shape)


def sampling_span(input_size: int, scale: float, radius: float, antialias: bool) -> int:
    """ScaleAndTranslate's taps along one axis (its kernel's `span_size`):
    min(2·⌈radius · kernel_scale⌉ + 1, input size), kernel_scale = max(1/scale, 1) with
    antialias (the kernel widens when downsampling), else 1."""
    kernel_scale = max(1.0 / scale, 1.0) if antialias else 1.0
    return min(2 * math.ceil(radius * kernel_scale) + 1, input_size)


def scale_and_translate_flops(input_shape, output_shape, spans) -> int:
    """ScaleAndTranslate: separable, rows first into [N, H_out, W_in, C], then columns; a
    multiply-add per tap: 2·N·C·(H_out·W_in·span_h + H_out·W_out·span_w).
    # input: [N, H_in, W_in, C], output: [N, H_out, W_out, C], spans: (span_h, span_w)"""
    n, _, w_in, c = input_shape
    _, h_out, w_out, _ = output_shape
    span_h, span_w = spans
    return 2 * n * c * (h_out * w_in * span_h + h_out * w_out * span_w)


def fft_flops(transforms: int, length: int, real: bool) -> int:
    """FFT/IFFT (1-3D): 5·N·log2 N per complex transform of N points (N: the product of the
    transformed dims), half of it for a real signal (RFFT/IRFFT): FFTW's benchFFT convention
    for the float ops of a transform, whatever algorithm runs. # transforms: batch elements"""
    per_transform = 5 * length * math.log2(length) if length > 1 else 0.0
    return round(transforms * per_transform / (2 if real else 1))


def segment_flops(data_shape) -> int:
    """SegmentSum, UnsortedSegmentSum, ... Max/Min/Prod/Mean: 1 per data element (each is
    combined into its segment). # data: [n, ...]"""
    return elements(data_shape)


def scatter_combine_flops(updates_shape) -> int:
    """ScatterNd (adds duplicates), TensorScatterAdd/Sub/Max/Min, ...: 1 per update element
    (each is combined with what its index holds). # updates: [k, ...]"""
    return elements(updates_shape)


def top_k_flops(input_shape, k: int) -> int:
    """TopKV2: n·(1 + ⌈log2 k⌉) comparisons per row of n (a heap of the k largest: one
    comparison with its smallest per element, ⌈log2 k⌉ more to sift one in; k = 1 is Max's
    count, k = n, as `tf.sort` calls it, a heap sort's). # input: [..., n]"""
    return elements(input_shape) * (1 + max(k - 1, 0).bit_length())


def unique_flops(input_shape) -> int:
    """Unique, UniqueWithCounts: 1 comparison per input element (a hash-table lookup of
    each). # input: [n]"""
    return elements(input_shape)


# --- MACs of contraction ops -----------------------------------------------------------------


def matmul_macs(a_shape, output_shape, transpose_a: bool) -> int:
    """MatMul: M·N·K. # a: [M, K] (or [K, M] transposed), output: [M, N]"""
    k = a_shape[0] if transpose_a else a_shape[1]
    return elements(output_shape) * k


def batch_matmul_macs(a_shape, output_shape, adj_x: bool) -> int:
    """BatchMatMul: B·M·N·K (broadcast batch).
    # a: [..., M, K] (or [..., K, M] with adj_x), output: [..., M, N]"""
    k = a_shape[-2] if adj_x else a_shape[-1]
    return elements(output_shape) * k


def conv_macs(filter_shape, output_shape) -> int:
    """Conv2D/Conv3D: output elements · kernel volume · input channels per group.
    # filter: [kh, kw, cin/groups, cout], output: [N, H, W, cout]"""
    return elements(output_shape) * elements(filter_shape[:-1])


def depthwise_conv_macs(filter_shape, output_shape) -> int:
    """DepthwiseConv2dNative: output elements · kh · kw. # filter: [kh, kw, cin, multiplier]"""
    return elements(output_shape) * elements(filter_shape[:-2])


def conv_transpose_macs(filter_shape, out_backprop_shape) -> int:
    """Conv2DBackpropInput/Conv3DBackpropInputV2 (a transposed conv): each input element times
    the kernel volume and its output channels. # filter: [kh, kw, cout, cin], x: [N, H, W, cin]"""
    return elements(out_backprop_shape) * elements(filter_shape[:-1])


def einsum_macs(equation: str, shapes) -> int:
    """Einsum: ∏ of every distinct index size (one multiply-add per point of the joint index
    space) for two operands with a summed index; 0 for one operand (a transpose, a sum or a
    trace: no multiply) and for products without a summed index (an outer or elementwise
    product: multiplies, no accumulation; `einsum_product_flops` counts them).

    More than two operands (TF's kernel takes two; `tf.einsum` splits longer equations into
    pairwise Einsum nodes along opt_einsum's path): contracted left to right, each intermediate
    keeping the indices that later operands or the output need.
    # equation: "bqhd,bkhd->bhqk", shapes: one static shape per operand, "..." broadcast
    """
    terms, output = parse_einsum(equation, shapes)
    if len(terms) < 2 or not _summed(terms, output):
        return 0
    sizes = _index_sizes(terms, shapes)
    macs, left = 0, terms[0]
    for i, right in enumerate(terms[1:], start=1):
        joint = list(dict.fromkeys(left + right))
        macs += math.prod(sizes[x] for x in joint)
        later = set(output).union(*terms[i + 1 :]) if i + 1 < len(terms) else set(output)
        left = [x for x in joint if x in later]
    return macs


def einsum_single_operand_flops(equation: str, shapes) -> int:
    """One-operand Einsum: ∏ of its distinct index sizes (one add per element read; a trace
    "ii->" reads n) when an index is summed away, else 0 (data movement: a transpose or a
    diagonal)."""
    terms, output = parse_einsum(equation, shapes)
    if not _summed(terms, output):
        return 0
    return math.prod(_index_sizes(terms, shapes).values())


def einsum_product_flops(equation: str, shapes) -> int:
    """Einsum of several operands without a summed index (an outer or elementwise product,
    "bi,j->bij"): 1 per output element for each multiply, as TF counts Mul."""
    terms, output = parse_einsum(equation, shapes)
    sizes = _index_sizes(terms, shapes)
    return (len(terms) - 1) * math.prod(sizes[x] for x in output)


def _summed(terms, output) -> bool:
    """Whether some index is summed away (appears in an operand but not in the output)."""
    return bool(set().union(*map(set, terms)) - set(output))


def _index_sizes(terms, shapes) -> dict:
    sizes: dict = {}
    for term, shape in zip(terms, shapes):
        for index, dim in zip(term, shape):
            sizes[index] = max(sizes.get(index, 1), dim)  # broadcasting: 1 against n
    return sizes


def parse_einsum(equation: str, shapes) -> tuple[list, list]:
    """(operand index lists, output index list), with "..." expanded to one index per
    broadcast dim, right-aligned across operands (NumPy's broadcasting), and an implicit output
    (no "->") in NumPy's order: the broadcast dims, then the letters used once, sorted."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    raw_terms = lhs.split(",")
    if len(raw_terms) != len(shapes):
        raise ValueError(
            f"Einsum equation {equation!r} has {len(raw_terms)} operands, "
            f"received {len(shapes)} shapes."
        )
    ranks = [_ellipsis_rank(term, len(shape)) for term, shape in zip(raw_terms, shapes)]
    broadcast = [f"...{i}" for i in range(max(ranks, default=0))]
    terms = [_expand(term, broadcast, n) for term, n in zip(raw_terms, ranks)]
    if arrow:
        output = _expand(rhs, broadcast, len(broadcast))
    else:
        counts: dict = {}
        for term in terms:
            for x in term:
                counts[x] = counts.get(x, 0) + 1
        output = broadcast + sorted(x for x, n in counts.items() if n == 1 and len(x) == 1)
    return terms, output


def _ellipsis_rank(term: str, rank: int) -> int:
    """How many dims an operand's "..." stands for (0 without one)."""
    return rank - len(term.replace("...", "")) if "..." in term else 0


def _expand(term: str, broadcast: list, n: int) -> list:
    """Index list of one term; its "..." takes the last `n` broadcast indices (right-aligned:
    an operand with fewer broadcast dims lines up with the trailing ones)."""
    head, dots, tail = term.partition("...")
    if not dots:
        return list(term)
    return list(head) + broadcast[len(broadcast) - n :] + list(tail)


# --- applying the rules to a graph op ---------------------------------------------------------


def static_shape(tensor) -> tuple | None:
    """A tensor's shape as a tuple of ints, or None when any dim is unknown."""
    shape = tensor.shape
    if shape.rank is None or not shape.is_fully_defined():
        return None
    return tuple(int(d) for d in shape.as_list())


def is_float(tensor) -> bool:
    return tensor.dtype.is_floating or tensor.dtype.is_complex


def rule_flops(op) -> int | None:
    """Float ops of `op` by our rules (`RULES`: op types TF's profiler skips), or None: no
    rule applies or the shapes are not static. Non-float data (integer indices) counts 0."""
    rule = RULES.get(op.type)
    if rule is None:
        return None
    try:
        return rule(op)
    except (ValueError, TypeError, IndexError):  # an attr or input this op version lacks
        return None


def _float_rule(rule, index: int = 0, of_output: bool = False):
    """A graph rule applying `rule(shape)` to input (or output) `index`: 0 for non-float data,
    None when its shape is not static."""

    def apply(op) -> int | None:
        tensor = op.outputs[index] if of_output else op.inputs[index]
        if not is_float(tensor):
            return 0
        shape = static_shape(tensor)
        return None if shape is None else rule(shape)

    return apply


def _batch_norm(op) -> int | None:
    shape = static_shape(op.inputs[0])
    return None if shape is None else batch_norm_flops(shape)


def _unregistered_contraction(op) -> int | None:
    macs = op_macs(op)
    return 2 * macs if macs else None


def _pool_3d(op) -> int | None:
    out = static_shape(op.outputs[0])
    return None if out is None else pool_3d_flops(out, list(op.get_attr("ksize")))


def _resize(op) -> int | None:
    out = static_shape(op.outputs[0])
    return None if out is None else resize_flops(out, RESIZE_TAPS[op.type])


def _crop_and_resize(op) -> int | None:
    out = static_shape(op.outputs[0])
    if out is None:
        return None
    return 0 if op.get_attr("method") == b"nearest" else resize_flops(out, 4)  # nearest: a copy


def _scale_and_translate(op) -> int | None:
    """ScaleAndTranslate with its constant `scale` input, or, when that is computed in the
    graph (as `tf.image.resize` does), output size ÷ input size, the scale it computes."""
    x, out = static_shape(op.inputs[0]), static_shape(op.outputs[0])
    if x is None or out is None:
        return None
    scale = _constant(op.inputs[2])
    if scale is None:
        scale = (out[1] / x[1], out[2] / x[2])
    radius = SAMPLING_KERNEL_RADII[op.get_attr("kernel_type").decode()]
    antialias = op.get_attr("antialias")
    spans = tuple(sampling_span(x[i], float(scale[i - 1]), radius, antialias) for i in (1, 2))
    return scale_and_translate_flops(x, out, spans)


def _fft(op) -> int | None:
    """FFT ops: N is the product of the transformed dims of the complex signal (FFT, IFFT),
    of the `fft_length` input (RFFT), or of the real output (IRFFT)."""
    dims, real = FFT_OPS[op.type]
    signal = op.outputs[0] if op.type.startswith("IRFFT") else op.inputs[0]
    shape = static_shape(signal)
    if shape is None:
        return None
    length = elements(shape[-dims:])
    if op.type.startswith("RFFT"):
        fft_length = _constant(op.inputs[1])
        if fft_length is None:
            return None
        length = elements(int(n) for n in fft_length)
    return fft_flops(elements(shape[:-dims]), length, real)


def _top_k(op) -> int | None:
    x, out = static_shape(op.inputs[0]), static_shape(op.outputs[0])
    if not is_float(op.inputs[0]):
        return 0
    return None if x is None or out is None else top_k_flops(x, out[-1])


def _constant(tensor):
    """The value of a tensor TF can fold to a constant, or None."""
    from tensorflow.python.framework import tensor_util

    return tensor_util.constant_value(tensor)


def _einsum_flops(op) -> int | None:
    shapes = [static_shape(x) for x in op.inputs]
    if any(s is None for s in shapes):
        return None
    equation = op.get_attr("equation").decode()
    if len(shapes) == 1:
        return einsum_single_operand_flops(equation, shapes)
    macs = einsum_macs(equation, shapes)
    return 2 * macs if macs else einsum_product_flops(equation, shapes)


# The rule table: op type -> its float ops from the graph op (None: shapes not static). Only
# consulted where TF registers no count; op types in none of TF's, these and NON_ARITHMETIC_OPS
# are reported as uncounted.
RULES = {
    "Einsum": _einsum_flops,
    **dict.fromkeys(ELEMENTWISE_OPS, _float_rule(elementwise_flops, of_output=True)),
    **dict.fromkeys(REDUCTION_OPS, _float_rule(reduction_flops)),
    **dict.fromkeys(ELEMENTWISE_GRADIENT_OPS, _float_rule(elementwise_flops, of_output=True)),
    **dict.fromkeys(VARIABLE_UPDATE_OPS, _float_rule(elementwise_flops, 1)),
    **dict.fromkeys(SOFTMAX_LIKE_OPS, _float_rule(softmax_like_flops)),
    **dict.fromkeys(BATCH_NORM_OPS, _batch_norm),
    **dict.fromkeys(UNREGISTERED_CONTRACTIONS, _unregistered_contraction),
    **dict.fromkeys(POOL_3D_OPS, _pool_3d),
    **dict.fromkeys(RESIZE_TAPS, _resize),
    "CropAndResize": _crop_and_resize,
    "ScaleAndTranslate": _scale_and_translate,
    **dict.fromkeys(FFT_OPS, _fft),
    **dict.fromkeys(SEGMENT_OPS, _float_rule(segment_flops)),
    **{t: _float_rule(scatter_combine_flops, i) for t, i in SCATTER_COMBINE_OPS.items()},
    **dict.fromkeys(TOP_K_OPS, _top_k),
    **dict.fromkeys(UNIQUE_OPS, _float_rule(unique_flops)),
}


def op_macs(op) -> int:
    """Multiply-accumulates of a contraction op (0 for every other op type, and for shapes
    that are not static)."""
    t = op.type
    try:
        if t == "Einsum":
            shapes = [static_shape(x) for x in op.inputs]
            if any(s is None for s in shapes):
                return 0
            return einsum_macs(op.get_attr("equation").decode(), shapes)
        if t not in MAC_OP_TYPES:
            return 0
        if t in FILTER_GRADIENT_OPS:
            f, dy = static_shape(op.outputs[0]), static_shape(op.inputs[2])
            if f is None or dy is None:
                return 0
            depthwise = t.startswith("Depthwise")
            return depthwise_conv_macs(f, dy) if depthwise else conv_macs(f, dy)
        a, b, out = (
            static_shape(op.inputs[0]),
            static_shape(op.inputs[1]),
            static_shape(op.outputs[0]),
        )
        if t == "MatMul":
            return (
                0 if a is None or out is None else matmul_macs(a, out, op.get_attr("transpose_a"))
            )
        if t.startswith("BatchMatMul"):
            adj = (
                op.get_attr("adj_x") if t != "BatchMatMul" or "adj_x" in op.node_def.attr else False
            )
            return 0 if a is None or out is None else batch_matmul_macs(a, out, adj)
        if t in ("Conv2D", "Conv3D"):
            return 0 if b is None or out is None else conv_macs(b, out)
        if t == "DepthwiseConv2dNative":
            return 0 if b is None or out is None else depthwise_conv_macs(b, out)
        if t == "DepthwiseConv2dNativeBackpropInput":  # (input_sizes, filter, out_backprop)
            dy = static_shape(op.inputs[2])
            return 0 if b is None or dy is None else depthwise_conv_macs(b, dy)
        # Conv2DBackpropInput(input_sizes, filter, out_backprop), Conv3DBackpropInputV2 alike.
        x = static_shape(op.inputs[2])
        return 0 if b is None or x is None else conv_transpose_macs(b, x)
    except (ValueError, TypeError, IndexError):  # an attr or input this op version lacks
        return 0


MAC_OP_TYPES = frozenset(
    {
        "MatMul",
        "BatchMatMul",
        "BatchMatMulV2",
        "BatchMatMulV3",
        "Conv2D",
        "Conv3D",
        "DepthwiseConv2dNative",
        "Conv2DBackpropInput",
        "Conv3DBackpropInputV2",
        "Einsum",
        "DepthwiseConv2dNativeBackpropInput",
        *FILTER_GRADIENT_OPS,
    }
)
