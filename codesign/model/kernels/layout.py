"""Column order of the flat arrays the kernels read and write (plain ints: numba globals)."""

# ---- chip: float64[CHIP_LEN] -------------------------------------------------------------
C_FLOPS_FP32 = 0  # dense peak FLOP/s per precision
C_FLOPS_BF16 = 1
C_FLOPS_FP8 = 2
C_FLOPS_FP4 = 3
C_UNITS = 4  # compute units
C_CLOCK_HZ = 5
C_SRAM_B = 6  # on-chip SRAM, bytes
C_HBM_B = 7  # HBM capacity, bytes
C_HBM_BPS = 8  # HBM bandwidth, bytes/s
C_UP_BPS = 9  # scale-up bandwidth per chip per direction, bytes/s
C_DOMAIN = 10  # chips per scale-up domain
C_OUT_BPS = 11  # scale-out NIC bandwidth per chip per direction, bytes/s
C_TDP_W = 12
# efficiency of the chip + software stack (codesign.model.efficiency holds the calibrated defaults)
C_GEMM_EFF = 13  # sustained fraction of peak on large 16/32-bit GEMMs
C_GEMM_EFF_LOWP = 14  # same for fp8/fp4 GEMMs
C_ATTN_EFF = 15  # fused (flash) attention, fraction of the 16-bit peak
C_MEM_EFF = 16  # streaming fraction of HBM peak bandwidth
C_NET_EFF = 17  # large-collective fraction of link bandwidth
C_KERNEL_S = 18  # fixed time per kernel launch, s
# energy (codesign.model.chip.power derives them from the technology data)
C_E_FP32 = 19  # J per FLOP of a matmul at this precision, operand delivery included
C_E_BF16 = 20
C_E_FP8 = 21
C_E_FP4 = 22
C_E_HBM = 23  # J per byte moved to or from HBM
C_E_LINK = 24  # J per byte sent over a scale-up or scale-out link
C_LEAK_W = 25  # static power of the chip, W
C_BUSY_W = 26  # clock tree + control power while kernels run (whatever they compute), W
C_THROTTLES = 27  # 1: over TDP the chip lowers its clock to fit (DVFS); 0: it is infeasible
C_MIN_TILE_M = 28  # smallest GEMM tile height its matrix units run at full rate (rows)
C_ELEM_B = 29  # elementwise traffic per layer forward, bytes per token per hidden unit
CHIP_LEN = 30

# ---- cluster: float64[CLUSTER_LEN] -------------------------------------------------------
K_N_CHIPS = 0
K_TOPOLOGY = 1  # index into specs.TOPOLOGIES
K_OVERSUB = 2
K_UP_LAT_S = 3
K_OUT_LAT_S = 4
K_PUE = 5
K_HOST_W = 6  # host + NIC power per chip, W
K_HOST_BPS = 7  # bytes/s one chip moves to or from host memory, per direction (link and DRAM)
K_HOST_MEM_B = 8  # host memory per chip, bytes (the second tier offloading fills)
K_HOST_DRAM_BPS = 9  # host memory bandwidth per chip, bytes/s (the host CPU's Adam step)
CLUSTER_LEN = 10

TOPO_FAT_TREE = 0  # order of specs.TOPOLOGIES
TOPO_RAIL = 1
TOPO_TORUS2 = 2
TOPO_TORUS3 = 3
TOPO_DRAGONFLY = 4

# ---- model: float64[MODEL_LEN] -----------------------------------------------------------
M_LAYERS = 0
M_HIDDEN = 1
M_HEADS = 2
M_KV_HEADS = 3
M_FFN = 4
M_VOCAB = 5
M_GATED = 6
M_EXPERTS = 7
M_TOPK = 8
M_MOE_FFN = 9
M_SHARED = 10
M_DENSE_LAYERS = 11
M_KV_LATENT = 12  # MLA: compressed KV width per token and layer (0 = standard attention)
M_HEAD_DIM = 13  # query/key head width (the non-RoPE part under MLA)
M_Q_LORA = 14  # MLA query bottleneck rank (0 = full-rank query projection)
M_KV_LORA = 15  # MLA key/value latent rank (0 = not MLA)
M_ROPE_DIM = 16  # MLA decoupled-RoPE width per head
M_V_HEAD_DIM = 17  # value head width
M_WINDOW = 18  # sliding-window attention span, tokens (0 = none)
M_WINDOW_LAYERS = 19  # layers that use the sliding window
MODEL_LEN = 20

# ---- training job: float64[JOB_LEN] ------------------------------------------------------
J_SEQ = 0
J_GBATCH = 1  # sequences per optimizer step
J_PREC = 2  # index into specs.PRECISIONS
J_BYTES = 3  # bytes per matmul operand element for that precision (activations/weights)
J_ATTN = 4  # index into specs.ATTENTION_IMPLS: 0 fused (flash), 1 unfused
J_MOE_IMB = 5  # tokens of the busiest expert / mean tokens per expert (>= 1)
J_GRAD_B = 6  # bytes per gradient element (fp32 main gradients in bf16/fp8 training)
JOB_LEN = 7

# ---- mapping: int64[MAP_LEN]; in a "fixed" array, -1 means "search this field" ------------
P_TP = 0
P_PP = 1
P_DP = 2
P_CP = 3
P_EP = 4
P_VPP = 5
P_MB = 6
P_RECOMPUTE = 7  # 0 none, 1 selective, 2 full, 3 offload (full, checkpoints in host memory)
P_ZERO = 8  # 0..3
P_SP = 9  # sequence parallel 0/1
P_EPO = 10  # 1: the expert-parallel all-to-all overlaps another micro-batch's compute
P_HSDP = 11  # 1: ZeRO-3 shards within the scale-up domain and replicates across (hybrid)
P_OFFLOAD = 12  # bits: 1 optimizer states in host memory, 2 weights + gradients (kernels/offload)
MAP_LEN = 13

# ---- result: float64[OUT_LEN] ------------------------------------------------------------
O_STEP_S = 0
O_TOKENS_PER_S = 1
O_MFU = 2
O_MEM_B = 3  # peak memory per chip, bytes
O_CHIP_W = 4
O_CLUSTER_W = 5
O_TOK_PER_J = 6
O_T_COMPUTE = 7  # per-step time spent in each part, s (exposed, on the critical path)
O_T_TP = 8
O_T_BUBBLE = 9
O_T_DP = 10
O_T_OPT = 11
O_T_PP = 12
O_BUSY = 13  # fraction of the step the compute units are busy
O_N_USED = 14  # chips the mapping uses (<= cluster size)
O_FLOPS = 15  # FLOPs one chip executes per step (recompute included)
O_HBM_B = 16  # HBM bytes one chip moves per step
O_LINK_B = 17  # bytes one chip sends over links per step
O_W_COMPUTE = 18  # chip power by part, W (they sum to O_CHIP_W): matmul FLOPs with operands,
O_W_HBM = 19  # HBM traffic,
O_W_LINK = 20  # link traffic,
O_W_BUSY = 21  # clocks and control while busy,
O_W_LEAK = 22  # leakage
O_CLOCK = 23  # sustained clock / peak clock (< 1 when the chip throttles to its TDP)
O_T_CP = 24  # exposed context-parallel ring time per step, s (part of O_T_TP)
O_T_EP = 25  # exposed expert-parallel all-to-all time per step, s (part of O_T_TP)
O_T_FSDP = 26  # exposed ZeRO-3 / FSDP parameter gathers and gradient scatters, s (in O_T_DP)
O_T_MOE = 27  # MoE router, permutation and expert GEMM time per step, s (part of O_T_COMPUTE)
O_T_ATTN = 28  # attention-core time per step, s (part of O_T_COMPUTE)
O_MEM_WEIGHTS = 29  # memory per chip by term, bytes (they sum to O_MEM_B): weights,
O_MEM_GRADS = 30  # weight gradients,
O_MEM_OPT = 31  # optimizer states (fp32 master, Adam m and v),
O_MEM_ACT = 32  # activations of the micro-batches in flight,
O_MEM_LOGITS = 33  # output-layer logits,
O_MEM_BUFFER = 34  # framework workspace, communication and prefetch buffers
O_ZERO = 35  # the ZeRO stage the memory terms assume (= the mapping's)
O_OFFLOAD = 36  # what the mapping keeps in host memory (P_OFFLOAD bits)
O_MEM_HOST = 37  # bytes per chip in host memory (offloaded states, activation checkpoints)
O_T_HOST = 38  # exposed host-memory time per step, s: copies compute does not hide, host Adam
OUT_LEN = 39

# ---- status codes ------------------------------------------------------------------------
S_OK = 0
S_INVALID = 1  # degrees do not divide the model / batch / cluster
S_OOM = 2  # does not fit in HBM
S_NO_BW = 3  # needs a network with zero bandwidth
S_NO_COMPUTE = 4  # chip has no throughput at this precision
S_BAD_INPUT = 5  # NaN, negative or zero where a positive value is required
S_NO_CANDIDATE = 6  # the search found no mapping to try
S_SLO = 7  # fits, but over a latency limit (inference)
S_POWER = 8  # the workload would draw more than the chip's TDP (cooling limit), even at the
#   lowest clock for a chip that throttles
N_STATUS = 9

# ---- inference job: float64[IJOB_LEN] ----------------------------------------------------
I_ISL = 0  # prompt tokens per request
I_OSL = 1  # generated tokens per request
I_CONC = 2  # requests in flight for the whole system; 0 = as many as fit (max throughput)
I_PREC = 3  # weight/matmul precision, index into specs.PRECISIONS
I_W_BYTES = 4  # bytes per weight element
I_KV_BYTES = 5  # bytes per KV-cache element
I_TTFT_SLO = 6  # time-to-first-token limit, s (0 = none)
I_ITL_SLO = 7  # inter-token latency limit, s (0 = none)
I_MOE_IMB = 8  # tokens of the busiest expert / mean tokens per expert (>= 1)
IJOB_LEN = 9

# ---- inference result: float64[IOUT_LEN] -------------------------------------------------
IO_TPS = 0  # output tokens/s of the whole system
IO_TTFT = 1  # s
IO_ITL = 2  # s
IO_MEM_B = 3  # memory per chip, bytes
IO_BATCH = 4  # sequences decoded together per replica
IO_REPLICAS = 5
IO_T_PREFILL = 6  # one request's prefill, s
IO_T_DECODE = 7  # one decode step of the whole batch, s
IO_CHIP_W = 8
IO_CLUSTER_W = 9
IO_TOK_PER_J = 10
IO_BUSY = 11
IO_N_USED = 12
IO_DECODE_INTENSITY = 13  # decode FLOPs per HBM byte (compare with the chip's balance point)
IO_W_COMPUTE = 14  # chip power by part, W, as O_W_* (they sum to IO_CHIP_W)
IO_W_HBM = 15
IO_W_LINK = 16
IO_W_BUSY = 17
IO_W_LEAK = 18
IO_N_BATCHES = 19  # batches in flight per replica (pipeline parallelism: <= pp)
IO_S_PREFILL = 20  # one prefill on the slowest pipeline stage, s (= IO_T_PREFILL at pp 1)
IO_S_DECODE = 21  # one decode step on the slowest pipeline stage, s
IO_CLOCK = 22  # sustained clock / peak clock, as O_CLOCK
IO_MEM_WEIGHTS = 23  # memory per chip: weights, bytes
IO_MEM_KV = 24  # KV cache of the sequences in flight, bytes
IO_MEM_BUFFER = 25  # workspace and buffers, bytes
IO_PREFILL_BATCH = 26  # prompts prefilled together (chunked-prefill token budget)
IOUT_LEN = 27

# ---- serving traffic: float64[TR_LEN] (kernels/serving.py) --------------------------------
TR_RATE = 0  # requests/s offered (0 = the goodput: the highest rate within the SLOs)
TR_ISL_CV = 1  # coefficient of variation of prompt length (lognormal; 0 = all I_ISL)
TR_OSL_CV = 2  # coefficient of variation of output length (lognormal; 0 = all I_OSL)
TR_PREFIX_HIT = 3  # share of prompt tokens found in the prefix cache, 0..1
TR_SPEC_K = 4  # draft tokens per speculative-decoding step (0 = none)
TR_SPEC_ACCEPT = 5  # probability that a draft token is accepted, 0..1
TR_SPEC_COST = 6  # one draft token's cost relative to a target decode step
TR_CHUNK = 7  # one pool: prefill tokens a mixed step carries (<= 0: whole prompts; the
#   search: 0 = searched, -1 = whole prompts)
TR_PCT = 8  # the percentile the latency limits apply to, 0..1 (0.99 = P99)
TR_N_PREFILL = 9  # disaggregated: chips of the prefill pool (0 = co-located, one pool)
TR_KV_UP = 10  # disaggregated: 1 = the KV cache moves over the scale-up network
TR_LEN = 11

# ---- serving result: float64[SV_LEN] ----------------------------------------------------
SV_RATE = 0  # requests/s served: the offered rate, or the goodput
SV_TPS = 1  # output tokens/s
SV_TTFT_P50 = 2  # s
SV_TTFT_P90 = 3
SV_TTFT_P99 = 4
SV_ITL_P50 = 5  # s per output token
SV_ITL_P90 = 6
SV_ITL_P99 = 7
SV_TTFT_PCT = 8  # at TR_PCT
SV_ITL_PCT = 9
SV_E2E_PCT = 10  # request latency at TR_PCT, s
SV_PREFILL_CAP = 11  # requests/s the prefill side sustains at full load
SV_DECODE_CAP = 12  # requests/s the decode side sustains at full batches
SV_KV_S = 13  # moving a mean prompt's KV cache from prefill to decode, s
SV_RHO_PREFILL = 14  # prefill utilisation
SV_BATCH = 15  # mean decode batch per replica
SV_CLUSTER_W = 16
SV_TOK_PER_J = 17
SV_TOKENS_PER_STEP = 18  # tokens one decode step emits per sequence (speculative decoding)
SV_N_PREFILL = 19  # chips of the prefill pool (0 = co-located)
SV_MEM_DECODE_B = 20  # memory per decode chip, bytes
SV_LEN = 21
