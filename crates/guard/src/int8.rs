//! Int8 matrix products for the encoder's linear layers.
//!
//! At chat length (a dozen word pieces) a pass of the encoder reads 42 MB of `f32` weights for
//! about 130 million multiply-adds, so both reading and arithmetic bound it. Stored as int8,
//! one scale per output, the weights are a quarter of that, and AVX-512 VNNI multiplies 64
//! int8 pairs per instruction against sixteen `f32` pairs for an FMA. Activations are
//! quantised per row as the product runs (eight bits, a scale and a zero point each), as
//! ONNX Runtime's dynamic quantisation does. Over the 1,059 prompts of the safety sets the
//! embeddings are within a cosine of 0.9948 of the `f32` model's (median 0.9989); a test of
//! the encoder holds three of them to 0.99.
//!
//! Integer sums are exact, so the vector kernels and the portable loop compute the same bits;
//! tests hold every path to it. The weights are laid out for the product the CPU runs:
//! groups for the VNNI kernel; plain rows for an AVX2 kernel (`pmaddwd`, sixteen products per
//! instruction) and for the portable loop of other CPUs; docs/benchmarks.md has what a pass
//! costs on each.
//!
//! Rows are independent, so a pass's products share them between the encoder's threads
//! ([`vectorised`]), each thread taking a run of rows against all the weights; the split
//! changes no bit.
//!
//! The kernels are this workspace's one use of `unsafe`: the intrinsics that load and store
//! through pointers, and the calls into code compiled for a CPU feature after checking at
//! run time that the CPU has it.

use std::sync::LazyLock;

use rayon::iter::{IndexedParallelIterator, ParallelIterator};
use rayon::slice::{ParallelSlice, ParallelSliceMut};

/// Outputs packed together: four vectors of sixteen `i32` lanes, which the VNNI kernel keeps
/// in registers against several rows at once.
const GROUP: usize = 64;
/// Inputs one lane sums per step (four bytes of an `i32`).
const DEPTH: usize = 4;
/// Bytes of weights per group per step.
const STEP_BYTES: usize = GROUP * DEPTH;

/// A weight matrix `[outputs, inputs]` quantised to int8 per output, laid out for the
/// product this CPU runs.
pub(crate) struct Int8Matrix {
    inputs: usize,
    outputs: usize,
    layout: Layout,
    /// The quantised weights, in `layout`.
    weights: Vec<i8>,
    /// Per output: the weight of one quantisation step.
    scales: Vec<f32>,
    /// Per output: the sum of its quantised weights, which removes the activations' zero point.
    weight_sums: Vec<i32>,
}

/// How a matrix's weights are laid out, which decides the product that reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Row-major `[outputs, inputs]`: each output's weights contiguous, for the portable
    /// product.
    Rows,
    /// Groups of [`GROUP`] outputs; within a group, for each step of [`DEPTH`] inputs, the
    /// outputs' [`DEPTH`] weights side by side, so each step of the VNNI kernel reads one run
    /// of [`STEP_BYTES`] (four 64-byte loads, each feeding VNNI instructions).
    #[cfg(target_arch = "x86_64")]
    VnniGroups,
}

impl Layout {
    /// The layout of the fastest product this CPU has.
    fn for_this_cpu() -> Layout {
        #[cfg(target_arch = "x86_64")]
        if x86::vnni_available() {
            return Layout::VnniGroups;
        }
        Layout::Rows
    }
}

/// Why a weight matrix cannot be packed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a {outputs}×{inputs} matrix cannot be packed: outputs must be a multiple of {GROUP} and inputs of {DEPTH}"
)]
pub(crate) struct ShapeError {
    outputs: usize,
    inputs: usize,
}

impl Int8Matrix {
    /// Quantises `weight`, row-major `[outputs, inputs]` (PyTorch's layout of a linear layer),
    /// for this CPU's product.
    pub(crate) fn quantise(
        weight: &[f32],
        outputs: usize,
        inputs: usize,
    ) -> Result<Int8Matrix, ShapeError> {
        Self::quantise_as(weight, outputs, inputs, Layout::for_this_cpu())
    }

    /// [`Int8Matrix::quantise`] for a given layout.
    fn quantise_as(
        weight: &[f32],
        outputs: usize,
        inputs: usize,
        layout: Layout,
    ) -> Result<Int8Matrix, ShapeError> {
        if !outputs.is_multiple_of(GROUP)
            || !inputs.is_multiple_of(DEPTH)
            || weight.len() != outputs * inputs
        {
            return Err(ShapeError { outputs, inputs });
        }
        let mut scales = Vec::with_capacity(outputs);
        let mut weight_sums = Vec::with_capacity(outputs);
        let mut quantised = Vec::with_capacity(weight.len());
        for row in weight.chunks_exact(inputs) {
            let largest = row.iter().fold(0.0_f32, |m, w| m.max(w.abs()));
            let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
            let start = quantised.len();
            quantised.extend(
                row.iter()
                    .map(|w| (w / scale).round_ties_even().clamp(-127.0, 127.0) as i8),
            );
            weight_sums.push(quantised[start..].iter().map(|&q| i32::from(q)).sum());
            scales.push(scale);
        }
        let weights = match layout {
            Layout::Rows => quantised,
            #[cfg(target_arch = "x86_64")]
            Layout::VnniGroups => x86::pack(&quantised, inputs),
        };
        Ok(Int8Matrix {
            inputs,
            outputs,
            layout,
            weights,
            scales,
            weight_sums,
        })
    }

    /// `activation(x · Wᵀ + bias)` for `x` row-major `[rows, inputs]`; the result is
    /// `[rows, outputs]`. The activation runs in the same loop as the rescaling, vectorised
    /// with it. Inlined so that the quantising and rescaling loops are compiled for the
    /// caller's CPU features ([`vectorised`]); the portable product itself runs in the
    /// threads' shares, compiled for the baseline, which only CPUs without AVX2 use.
    #[inline(always)]
    pub(crate) fn multiply(
        &self,
        x: &[f32],
        bias: &[f32],
        activation: impl Fn(f32) -> f32,
    ) -> Vec<f32> {
        #[cfg(target_arch = "x86_64")]
        if let Some(y) = x86::multiply(self, x, bias, &activation) {
            return y;
        }
        self.multiply_with(x, bias, activation, Self::portable_products)
    }

    /// [`Int8Matrix::multiply`] around a given integer product, inlined into its caller so that
    /// the quantising and rescaling loops are compiled for the caller's CPU features.
    #[inline(always)]
    fn multiply_with(
        &self,
        x: &[f32],
        bias: &[f32],
        activation: impl Fn(f32) -> f32,
        products: impl Fn(&Int8Matrix, &[u8], usize, &mut [i32]) + Sync,
    ) -> Vec<f32> {
        debug_assert_eq!(x.len() % self.inputs, 0);
        debug_assert_eq!(bias.len(), self.outputs);
        let activations = Activations::quantise(x, self.inputs);
        let rows = activations.rows();
        let mut sums = vec![0_i32; rows * self.outputs];
        // Rows are independent: the pool's threads take a share each (inside `vectorised`, the
        // encoder's pool). Integer sums, so the shares give the bits one thread would.
        let share = rows
            .div_ceil(rayon::current_num_threads())
            .max(MIN_ROWS_A_THREAD);
        sums.par_chunks_mut(share * self.outputs)
            .zip(activations.values.par_chunks(share * self.inputs))
            .for_each(|(sums, values)| products(self, values, values.len() / self.inputs, sums));
        let mut y = vec![0.0_f32; rows * self.outputs];
        for (r, (sums, y)) in sums
            .chunks_exact(self.outputs)
            .zip(y.chunks_exact_mut(self.outputs))
            .enumerate()
        {
            let (scale, zero) = (activations.scales[r], activations.zeros[r]);
            for ((((y, &sum), &weight_sum), &step), &b) in y
                .iter_mut()
                .zip(sums)
                .zip(&self.weight_sums)
                .zip(&self.scales)
                .zip(bias)
            {
                *y = activation((sum - zero * weight_sum) as f32 * scale * step + b);
            }
        }
        y
    }

    /// `sums[r][o] = Σₖ activations[r][k] · weight[o][k]`, exactly, in plain Rust over
    /// [`Layout::Rows`]: the path of CPUs with neither AVX-512 VNNI nor AVX2. An integer sum may be reordered,
    /// so the compiler vectorises it; outputs outside and rows inside keep each output's
    /// weights in the nearest cache while every row reads them.
    #[inline(always)]
    fn portable_products(&self, activations: &[u8], rows: usize, sums: &mut [i32]) {
        let activations = &activations[..rows * self.inputs];
        for (o, weights) in self.weights.chunks_exact(self.inputs).enumerate() {
            for (r, x) in activations.chunks_exact(self.inputs).enumerate() {
                sums[r * self.outputs + o] = x
                    .iter()
                    .zip(weights)
                    .map(|(&x, &w)| i32::from(x) * i32::from(w))
                    .sum();
            }
        }
    }
}

/// Rows of activations quantised to unsigned bytes: `x ≈ scale · (q − zero)`.
struct Activations {
    values: Vec<u8>,
    scales: Vec<f32>,
    zeros: Vec<i32>,
}

impl Activations {
    /// Inlined for the same reason as [`Int8Matrix::multiply_with`].
    #[inline(always)]
    fn quantise(x: &[f32], width: usize) -> Activations {
        let rows = x.len() / width;
        let mut out = Activations {
            values: Vec::with_capacity(x.len()),
            scales: Vec::with_capacity(rows),
            zeros: Vec::with_capacity(rows),
        };
        for row in x.chunks_exact(width) {
            // The range always holds 0, so that zero is exact (padding and ReLU-like tails).
            let (low, high) = range(row);
            let scale = if high > low {
                (high - low) / 255.0
            } else {
                1.0
            };
            let zero = (-low / scale).round_ties_even().clamp(0.0, 255.0);
            let inverse = 1.0 / scale;
            out.values
                .extend(row.iter().map(|&v| nearest_byte(v * inverse + zero)));
            out.scales.push(scale);
            out.zeros.push(zero as i32);
        }
        out
    }

    fn rows(&self) -> usize {
        self.scales.len()
    }
}

/// The fewest rows handed to a thread: waking another thread costs microseconds, about what a
/// row of the smallest layer's product does on AVX2 (a choice, not tuned).
const MIN_ROWS_A_THREAD: usize = 4;

/// The threads that share an encoder pass's products: one per CPU unless `RAYON_NUM_THREADS`
/// says otherwise; `None` where the system refused them, and passes run on the caller's thread
/// alone.
static POOL: LazyLock<Option<rayon::ThreadPool>> = LazyLock::new(|| {
    rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("lore-encoder-{i}"))
        .build()
        .inspect_err(|e| tracing::warn!("no encoder threads, passes run alone: {e}"))
        .ok()
});

/// Work to compile for the widest vectors the CPU has: AVX-512 where it has VNNI, else AVX2
/// with FMA, else the baseline. Only what [`Vectorised::run`] inlines benefits, so it and
/// what it calls are `#[inline(always)]` (a closure would be a separate function, compiled
/// for the baseline).
pub(crate) trait Vectorised {
    /// What the work gives.
    type Output;
    /// Does it; implementations are `#[inline(always)]`.
    fn run(self) -> Self::Output;
}

/// Runs `work` compiled for the widest vectors the CPU has, on the encoder's threads
/// ([`POOL`]): the products inside share their rows between them. A pass hands over to the
/// pool once, not once a product.
#[inline]
pub(crate) fn vectorised<W: Vectorised + Send>(work: W) -> W::Output
where
    W::Output: Send,
{
    let run = move || {
        #[cfg(target_arch = "x86_64")]
        return x86::vectorised(work);
        #[cfg(not(target_arch = "x86_64"))]
        work.run()
    };
    match POOL.as_ref() {
        Some(pool) => pool.install(run),
        None => run(),
    }
}

/// `v` rounded to the nearest integer (ties to even) and clamped to a byte. Adding 2²³ leaves
/// a float whose low mantissa bits are that integer: plain arithmetic that vectorises, where
/// `round` and a saturating cast become a call and scalar code per value.
#[inline(always)]
fn nearest_byte(v: f32) -> u8 {
    const SHIFT: f32 = 8_388_608.0;
    (v.clamp(0.0, 255.0) + SHIFT).to_bits() as u8
}

/// The smallest and largest of `values` and 0, in sixteen running lanes so that the loop
/// vectorises (a single running minimum is a chain of dependent scalar instructions).
#[inline(always)]
fn range(values: &[f32]) -> (f32, f32) {
    const WIDTH: usize = 16;
    let (mut low, mut high) = ([0.0_f32; WIDTH], [0.0_f32; WIDTH]);
    let chunks = values.chunks_exact(WIDTH);
    let rest = chunks.remainder();
    for chunk in chunks {
        for ((l, h), &v) in low.iter_mut().zip(&mut high).zip(chunk) {
            *l = if v < *l { v } else { *l };
            *h = if v > *h { v } else { *h };
        }
    }
    let fold = |lanes: &[f32], pick: fn(f32, f32) -> f32| lanes.iter().copied().fold(0.0, pick);
    (
        fold(&low, f32::min).min(fold(rest, f32::min)),
        fold(&high, f32::max).max(fold(rest, f32::max)),
    )
}

#[cfg(target_arch = "x86_64")]
#[allow(
    unsafe_code,
    reason = "the VNNI and AVX2 kernels; see the module's documentation"
)]
mod x86 {
    use super::{DEPTH, GROUP, Int8Matrix, Layout, LazyLock, STEP_BYTES, Vectorised};
    use std::arch::x86_64::{
        __m512i, _mm_add_epi32, _mm_loadu_si128, _mm_storeu_si128, _mm256_add_epi32,
        _mm256_castsi256_si128, _mm256_cvtepi8_epi16, _mm256_extracti128_si256, _mm256_hadd_epi32,
        _mm256_loadu_si256, _mm256_madd_epi16, _mm256_setzero_si256, _mm512_dpbusd_epi32,
        _mm512_loadu_si512, _mm512_set1_epi32, _mm512_setzero_si512, _mm512_storeu_si512,
    };

    /// Vectors of sixteen outputs in a group.
    const TILES: usize = GROUP / 16;
    /// Rows one pass keeps in registers: `TILES × ROWS` accumulators plus `TILES` weight
    /// vectors and a broadcast fit AVX-512's 32 registers.
    const ROWS: usize = 6;

    static VNNI: LazyLock<bool> = LazyLock::new(|| {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vnni")
    });
    static AVX2: LazyLock<bool> = LazyLock::new(|| {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    });

    pub(super) fn vnni_available() -> bool {
        *VNNI
    }

    /// [`Int8Matrix::multiply`] on the kernel for the matrix's layout, with the loops around it
    /// compiled for the kernel's CPU features; `None` where no kernel serves it (weights in
    /// rows on a CPU without AVX2, or rows not a whole number of [`WIDE`] steps).
    pub(super) fn multiply(
        matrix: &Int8Matrix,
        x: &[f32],
        bias: &[f32],
        activation: impl Fn(f32) -> f32,
    ) -> Option<Vec<f32>> {
        match matrix.layout {
            Layout::VnniGroups => {
                // A matrix is laid out for VNNI only where the CPU has it.
                assert!(*VNNI, "the VNNI kernel needs AVX-512 VNNI");
                let work = Multiply {
                    matrix,
                    x,
                    bias,
                    activation,
                    // SAFETY: the CPU has the features (checked just above).
                    products: |m: &Int8Matrix, a: &[u8], r, s: &mut [i32]| unsafe {
                        products_avx512(m, a, r, s)
                    },
                };
                // SAFETY: as above.
                Some(unsafe { run_avx512(work) })
            }
            Layout::Rows if *AVX2 && matrix.inputs.is_multiple_of(WIDE) => {
                let work = Multiply {
                    matrix,
                    x,
                    bias,
                    activation,
                    // SAFETY: the CPU has the features (checked by the match guard).
                    products: |m: &Int8Matrix, a: &[u8], r, s: &mut [i32]| unsafe {
                        products_avx2(m, a, r, s)
                    },
                };
                // SAFETY: as above.
                Some(unsafe { run_avx2(work) })
            }
            Layout::Rows => None,
        }
    }

    /// A product with the loops around it, to run compiled for a CPU feature.
    struct Multiply<'a, A, P> {
        matrix: &'a Int8Matrix,
        x: &'a [f32],
        bias: &'a [f32],
        activation: A,
        products: P,
    }

    impl<A, P> Vectorised for Multiply<'_, A, P>
    where
        A: Fn(f32) -> f32,
        P: Fn(&Int8Matrix, &[u8], usize, &mut [i32]) + Sync,
    {
        type Output = Vec<f32>;

        #[inline(always)]
        fn run(self) -> Vec<f32> {
            self.matrix
                .multiply_with(self.x, self.bias, self.activation, self.products)
        }
    }

    /// Inputs one AVX2 step reads: sixteen, as `i16`, in one register.
    const WIDE: usize = 16;
    /// Outputs and rows the AVX2 kernel keeps in registers: 4 × 2 accumulators, a widened
    /// weight vector, the rows and the products fit its 16 registers (4 × 3 spilled
    /// accumulators to the stack).
    const AVX2_OUTPUTS: usize = 4;
    // The sums are reduced four accumulators at a time (`dots_avx2`).
    const _: () = assert!(AVX2_OUTPUTS == 4);
    const AVX2_ROWS: usize = 2;

    /// [`Int8Matrix::portable_products`] with `pmaddwd`: each output's dot product with each
    /// row, sixteen inputs a step, sign-extended to `i16` (a product of a byte and a weight
    /// fits one) and summed in pairs into eight `i32` lanes, exactly.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn products_avx2(
        matrix: &Int8Matrix,
        activations: &[u8],
        rows: usize,
        sums: &mut [i32],
    ) {
        let inputs = matrix.inputs;
        let wide: Vec<i16> = activations[..rows * inputs]
            .iter()
            .map(|&x| i16::from(x))
            .collect();
        let x_rows: Vec<&[[i16; WIDE]]> =
            wide.chunks_exact(inputs).map(|r| r.as_chunks().0).collect();
        for (o, group) in matrix
            .weights
            .chunks_exact(AVX2_OUTPUTS * inputs)
            .enumerate()
        {
            let weights: [&[[i8; WIDE]]; AVX2_OUTPUTS] =
                std::array::from_fn(|t| group[t * inputs..][..inputs].as_chunks().0);
            for (b, x) in x_rows.chunks(AVX2_ROWS).enumerate() {
                let mut out = [[0_i32; AVX2_OUTPUTS]; AVX2_ROWS];
                // SAFETY: the CPU has the features (checked by `multiply`).
                unsafe {
                    match x.len() {
                        2 => dots_avx2::<2>(&weights, x, &mut out),
                        _ => dots_avx2::<1>(&weights, x, &mut out),
                    }
                }
                for (r, row) in out.iter().take(x.len()).enumerate() {
                    let at = (b * AVX2_ROWS + r) * matrix.outputs + o * AVX2_OUTPUTS;
                    sums[at..at + AVX2_OUTPUTS].copy_from_slice(row);
                }
            }
        }
    }

    /// The dot products of `R` activation rows with four weight rows.
    ///
    /// # Safety
    /// The CPU has AVX2. (Every pointer it reads or writes through is to an array of the
    /// length read or written.)
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn dots_avx2<const R: usize>(
        weights: &[&[[i8; WIDE]]; AVX2_OUTPUTS],
        x: &[&[[i16; WIDE]]],
        out: &mut [[i32; AVX2_OUTPUTS]; AVX2_ROWS],
    ) {
        // Equal lengths, checked once, let the compiler drop the bounds checks in the loop; the
        // rows as an array of `R` keep their addresses in registers. Outputs outer, rows inner:
        // one widened weight vector at a time instead of four.
        let steps = weights[0].len();
        assert!(weights.iter().all(|w| w.len() == steps) && x.iter().all(|x| x.len() == steps));
        let rows: [&[[i16; WIDE]]; R] = std::array::from_fn(|r| x[r]);
        let mut acc = [[_mm256_setzero_si256(); AVX2_OUTPUTS]; R];
        for step in 0..steps {
            for (t, weights) in weights.iter().enumerate() {
                // SAFETY: a 16-byte array.
                let w =
                    _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(weights[step].as_ptr().cast()) });
                for (acc, row) in acc.iter_mut().zip(&rows) {
                    // SAFETY: a 32-byte array.
                    let x = unsafe { _mm256_loadu_si256(row[step].as_ptr().cast()) };
                    acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(x, w));
                }
            }
        }
        // Each row's four sums of eight lanes, added pairwise in registers: three horizontal
        // adds and one add of the halves, instead of four stores and 28 scalar adds.
        for (acc, out) in acc.iter().zip(out.iter_mut()) {
            let pairs = _mm256_hadd_epi32(
                _mm256_hadd_epi32(acc[0], acc[1]),
                _mm256_hadd_epi32(acc[2], acc[3]),
            );
            let sums = _mm_add_epi32(
                _mm256_castsi256_si128(pairs),
                _mm256_extracti128_si256::<1>(pairs),
            );
            // SAFETY: `out` holds the 16 bytes stored.
            unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), sums) };
        }
    }

    /// Runs `work` compiled for AVX-512 or AVX2 where the CPU has it: what it inlines is
    /// vectorised sixteen or eight floats wide instead of the baseline's four.
    pub(super) fn vectorised<W: Vectorised>(work: W) -> W::Output {
        if *VNNI {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { run_avx512(work) }
        } else if *AVX2 {
            // SAFETY: as above.
            unsafe { run_avx2(work) }
        } else {
            work.run()
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn run_avx512<W: Vectorised>(work: W) -> W::Output {
        work.run()
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2<W: Vectorised>(work: W) -> W::Output {
        work.run()
    }

    /// `work` compiled for AVX2, for the test that it computes what the baseline does.
    #[cfg(test)]
    pub(super) fn avx2<W: Vectorised>(work: W) -> W::Output {
        assert!(*AVX2, "the CPU lacks AVX2");
        // SAFETY: the CPU has the features (checked just above).
        unsafe { run_avx2(work) }
    }

    /// Row-major quantised weights `[outputs, inputs]` in [`super::Layout::VnniGroups`].
    pub(super) fn pack(quantised: &[i8], inputs: usize) -> Vec<i8> {
        let steps = inputs / DEPTH;
        let mut packed = vec![0_i8; quantised.len()];
        for (o, row) in quantised.chunks_exact(inputs).enumerate() {
            let (group, lane) = (o / GROUP, o % GROUP);
            for (step, four) in row.chunks_exact(DEPTH).enumerate() {
                let at = ((group * steps + step) * GROUP + lane) * DEPTH;
                packed[at..at + DEPTH].copy_from_slice(four);
            }
        }
        packed
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn products_avx512(
        matrix: &Int8Matrix,
        activations: &[u8],
        rows: usize,
        sums: &mut [i32],
    ) {
        let steps = matrix.inputs / DEPTH;
        // Blocks of up to `ROWS` rows, each interleaved step by step (the rows' four bytes of
        // a step side by side) so the kernel reads them through one pointer.
        let heights: Vec<usize> = (0..rows)
            .step_by(ROWS)
            .map(|first| (rows - first).min(ROWS))
            .collect();
        let mut blocks = vec![[0_u8; DEPTH]; steps * rows];
        for (r, row) in activations
            .chunks_exact(matrix.inputs)
            .take(rows)
            .enumerate()
        {
            let (block, within) = (r / ROWS, r % ROWS);
            let height = heights[block];
            for (step, &four) in row.as_chunks().0.iter().enumerate() {
                blocks[block * ROWS * steps + step * height + within] = four;
            }
        }
        let mut out = [0_i32; GROUP * ROWS];
        // Groups outside, blocks inside: a group's weights come from memory once and from
        // cache for every further block of rows.
        for (group, weights) in matrix.weights.chunks_exact(steps * STEP_BYTES).enumerate() {
            for (b, &height) in heights.iter().enumerate() {
                let block = &blocks[b * ROWS * steps..][..steps * height];
                let out = &mut out[..GROUP * height];
                // SAFETY: the CPU has the features (checked by `multiply`).
                unsafe {
                    match height {
                        6 => rows_of::<6>(weights, block, out),
                        5 => rows_of::<5>(weights, block, out),
                        4 => rows_of::<4>(weights, block, out),
                        3 => rows_of::<3>(weights, block, out),
                        2 => rows_of::<2>(weights, block, out),
                        _ => rows_of::<1>(weights, block, out),
                    }
                }
                for (r, row) in out.chunks_exact(GROUP).enumerate() {
                    sums[(b * ROWS + r) * matrix.outputs + group * GROUP..][..GROUP]
                        .copy_from_slice(row);
                }
            }
        }
    }

    /// The sums of one group of outputs for `R` rows: `block` holds the rows' activations
    /// interleaved by step, `weights` the group's packed weights, `out` receives `R × GROUP`
    /// sums.
    ///
    /// # Safety
    /// The CPU has AVX-512 VNNI. (Every pointer it reads or writes through is to a chunk of
    /// the length read or written.)
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn rows_of<const R: usize>(weights: &[i8], block: &[[u8; DEPTH]], out: &mut [i32]) {
        debug_assert_eq!(weights.len(), block.len() / R * STEP_BYTES);
        debug_assert_eq!(out.len(), R * GROUP);
        let mut acc: [[__m512i; TILES]; R] = [[_mm512_setzero_si512(); TILES]; R];
        for (step, x) in weights.chunks_exact(STEP_BYTES).zip(block.chunks_exact(R)) {
            let w: [__m512i; TILES] = std::array::from_fn(|t| {
                // SAFETY: `step` holds `TILES × 64` bytes.
                unsafe { _mm512_loadu_si512(step.as_ptr().add(t * 64).cast()) }
            });
            for (acc, &four) in acc.iter_mut().zip(x) {
                let x = _mm512_set1_epi32(i32::from_le_bytes(four));
                for (a, w) in acc.iter_mut().zip(&w) {
                    *a = _mm512_dpbusd_epi32(*a, x, *w);
                }
            }
        }
        for (acc, row) in acc.iter().zip(out.chunks_exact_mut(GROUP)) {
            for (a, lanes) in acc.iter().zip(row.chunks_exact_mut(16)) {
                // SAFETY: `lanes` holds 16 `i32`, the 64 bytes stored.
                unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), *a) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic spread of values (a linear congruential sequence).
    fn values(n: usize, seed: u64, range: f32) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1 << 24) as f32 * 2.0 - 1.0) * range
            })
            .collect()
    }

    #[test]
    fn products_match_the_float_product_to_within_quantisation() {
        let (outputs, inputs, rows) = (64, 96, 7);
        let w = values(outputs * inputs, 1, 0.5);
        let x = values(rows * inputs, 2, 3.0);
        let bias = values(outputs, 3, 1.0);
        let layouts = [
            Layout::Rows,
            #[cfg(target_arch = "x86_64")]
            Layout::VnniGroups,
        ];
        for layout in layouts {
            #[cfg(target_arch = "x86_64")]
            if layout == Layout::VnniGroups && !x86::vnni_available() {
                continue;
            }
            let m = Int8Matrix::quantise_as(&w, outputs, inputs, layout).unwrap();
            let y = m.multiply(&x, &bias, |v| v);
            for r in 0..rows {
                for o in 0..outputs {
                    let exact: f32 = (0..inputs)
                        .map(|k| x[r * inputs + k] * w[o * inputs + k])
                        .sum::<f32>()
                        + bias[o];
                    let got = y[r * outputs + o];
                    // Each of the 96 terms is off by at most half a step of each factor.
                    assert!(
                        (got - exact).abs() < 0.25,
                        "{layout:?}: row {r} output {o}: {got} vs {exact}"
                    );
                }
            }
        }
    }

    /// Shapes that exercise every block size of the kernel: full and partial blocks of rows.
    const SHAPES: [(usize, usize, usize); 5] = [
        (64, 384, 6),
        (1_536, 384, 13),
        (64, 20, 1),
        (384, 1_536, 17),
        (128, 8, 22),
    ];

    fn gelu_like(v: f32) -> f32 {
        v * v.clamp(0.0, 1.0)
    }

    #[test]
    fn the_fast_kernel_computes_the_portable_product_exactly() {
        #[cfg(target_arch = "x86_64")]
        if x86::vnni_available() {
            for (outputs, inputs, rows) in SHAPES {
                let w = values(outputs * inputs, 4, 0.2);
                let x = values(rows * inputs, 5, 4.0);
                let bias = values(outputs, 6, 1.0);
                let fast = Int8Matrix::quantise_as(&w, outputs, inputs, Layout::VnniGroups)
                    .unwrap()
                    .multiply(&x, &bias, gelu_like);
                let portable = Int8Matrix::quantise_as(&w, outputs, inputs, Layout::Rows)
                    .unwrap()
                    .multiply_with(&x, &bias, gelu_like, Int8Matrix::portable_products);
                assert_eq!(fast, portable, "{outputs}×{inputs}, {rows} rows");
            }
        }
    }

    #[test]
    fn the_avx2_kernel_computes_the_portable_product_exactly() {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            let shapes = SHAPES.into_iter().chain([(64, 32, 22), (128, 16, 2)]);
            for (outputs, inputs, rows) in shapes.filter(|s| s.1 % 16 == 0) {
                let w = values(outputs * inputs, 10, 0.2);
                let x = values(rows * inputs, 11, 4.0);
                let bias = values(outputs, 12, 1.0);
                let m = Int8Matrix::quantise_as(&w, outputs, inputs, Layout::Rows).unwrap();
                let avx2 = x86::multiply(&m, &x, &bias, gelu_like).unwrap();
                let portable = m.multiply_with(&x, &bias, gelu_like, Int8Matrix::portable_products);
                assert_eq!(avx2, portable, "{outputs}×{inputs}, {rows} rows");
            }
        }
    }

    /// The portable multiply (its quantising and rescaling loops) compiled for AVX2 (inside
    /// [`vectorised`] on CPUs without VNNI) gives the same bits as compiled for the baseline.
    #[test]
    fn the_portable_product_is_the_same_compiled_for_avx2() {
        struct Product<'a>(&'a Int8Matrix, &'a [f32], &'a [f32]);
        impl Vectorised for Product<'_> {
            type Output = Vec<f32>;
            #[inline(always)]
            fn run(self) -> Vec<f32> {
                self.0
                    .multiply_with(self.1, self.2, gelu_like, Int8Matrix::portable_products)
            }
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            for (outputs, inputs, rows) in SHAPES {
                let w = values(outputs * inputs, 7, 0.2);
                let x = values(rows * inputs, 8, 4.0);
                let bias = values(outputs, 9, 1.0);
                let m = Int8Matrix::quantise_as(&w, outputs, inputs, Layout::Rows).unwrap();
                let baseline = Product(&m, &x, &bias).run();
                let avx2 = x86::avx2(Product(&m, &x, &bias));
                assert_eq!(avx2, baseline, "{outputs}×{inputs}, {rows} rows");
            }
        }
    }

    /// Rows shared between threads give the bits one thread gives.
    #[test]
    fn sharing_rows_between_threads_changes_nothing() {
        let pool = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
        };
        let (alone, shared) = (pool(1), pool(3));
        for (outputs, inputs, rows) in SHAPES {
            let w = values(outputs * inputs, 13, 0.2);
            let x = values(rows * inputs, 14, 4.0);
            let bias = values(outputs, 15, 1.0);
            let m = Int8Matrix::quantise(&w, outputs, inputs).unwrap();
            let one = alone.install(|| m.multiply(&x, &bias, gelu_like));
            let three = shared.install(|| m.multiply(&x, &bias, gelu_like));
            assert_eq!(one, three, "{outputs}×{inputs}, {rows} rows");
        }
    }

    #[test]
    fn a_matrix_the_kernel_cannot_tile_is_refused() {
        assert!(Int8Matrix::quantise(&[0.0; 30], 10, 3).is_err());
        assert!(Int8Matrix::quantise(&[0.0; 48 * 4], 48, 4).is_err());
        assert!(Int8Matrix::quantise(&[0.0; 64 * 5], 64, 5).is_err());
    }

    #[test]
    fn bytes_round_to_nearest_even_and_clamp() {
        for (v, want) in [
            (0.0, 0),
            (0.49, 0),
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (254.7, 255),
            (300.0, 255),
            (-3.0, 0),
            (f32::NAN, 0),
        ] {
            assert_eq!(nearest_byte(v), want, "{v}");
        }
        for i in 0..=2_550 {
            let v = i as f32 / 10.0;
            assert_eq!(nearest_byte(v), v.round_ties_even() as u8, "{v}");
        }
    }

    #[test]
    fn a_row_of_zeros_stays_zero() {
        let m = Int8Matrix::quantise(&values(64 * 8, 6, 1.0), 64, 8).unwrap();
        assert!(
            m.multiply(&[0.0; 8], &[0.0; 64], |v| v)
                .iter()
                .all(|&y| y == 0.0)
        );
    }
}
