//! The pairs a policy's texts are tuned on, each drawn from the keys of the texts and classes
//! it is between, so that an example added to a policy changes only the few pairs it wins.

use std::collections::BTreeMap;

use rayon::iter::{IntoParallelIterator, ParallelIterator};
use rayon::slice::ParallelSliceMut;

use crate::encoder::dot;

/// A text to tune on: which class it belongs to (its policy node) and the text itself, each
/// as a key that does not depend on the rest of the policy (what its pairs are drawn by, see
/// [`pairs`]); the lower layers' states of its word pieces (`rows × DIMENSION`); and its
/// embedding before tuning (the texts of other classes nearest it there are its rivals).
pub(crate) struct Text {
    pub(crate) class: u64,
    pub(crate) key: u64,
    pub(crate) states: Vec<f32>,
    pub(crate) embedding: Vec<f32>,
}

/// How many of a text's nearest texts of other classes are its rivals.
pub(super) const RIVALS: usize = 8;

/// How the layers are tuned: the settings of the probe in docs/benchmarks.md.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    /// Rounds over the texts; each round pairs every text once with a text of its class and
    /// once with a text of another.
    pub(crate) rounds: usize,
    /// Pairs a step.
    pub(crate) batch: usize,
    /// AdamW's step size and decoupled weight decay.
    pub(crate) learning_rate: f32,
    pub(crate) weight_decay: f32,
    /// Salts every draw of a pair.
    pub(crate) seed: u64,
}

pub(crate) const SCHEDULE: Schedule = Schedule {
    rounds: 5,
    batch: 32,
    learning_rate: 1e-4,
    weight_decay: 0.01,
    seed: 0x005e_7f17,
};

/// SplitMix64's finaliser: a bijection of `u64` whose output bits each depend on every input
/// bit.
pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SplitMix64: a small generator whose sequence is fixed (the tests' and the trainer
/// fingerprint's random layers).
pub(super) struct SplitMix(pub(super) u64);

impl SplitMix {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in [−1, 1].
    pub(super) fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Per text, the [`RIVALS`] texts of other classes nearest it before tuning, nearest first.
pub(super) fn rivals(texts: &[Text]) -> Vec<Vec<usize>> {
    (0..texts.len())
        .into_par_iter()
        .map(|i| {
            let mut near: Vec<(f32, usize)> = texts
                .iter()
                .enumerate()
                .filter(|(_, t)| t.class != texts[i].class)
                .map(|(j, t)| (dot(&texts[i].embedding, &t.embedding), j))
                .collect();
            let keep = RIVALS.min(near.len());
            if keep > 0 {
                near.select_nth_unstable_by(keep - 1, |a, b| {
                    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
                });
            }
            near.truncate(keep);
            near.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            near.into_iter().map(|(_, j)| j).collect()
        })
        .collect()
}

/// What a pair is drawn for: each a salt of [`draw`].
#[derive(Clone, Copy)]
pub(super) enum Choice {
    OwnClass = 1,
    RivalOrClass,
    Rival,
    OtherClass,
    OtherText,
    Order,
}

/// A text's draw for `choice` against a candidate (a text's or a class's key) in a round:
/// fixed by those alone, so the same on every run, build and policy.
pub(super) fn draw(
    schedule: &Schedule,
    round: usize,
    choice: Choice,
    key: u64,
    candidate: u64,
) -> u64 {
    let salt = mix(schedule.seed ^ mix(round as u64 ^ ((choice as u64) << 32)));
    mix(key ^ mix(candidate ^ salt))
}

/// Of `candidates`, the first whose draw is least. Rendezvous hashing: a candidate added or
/// removed changes the choice only where it is, or was, the least.
pub(super) fn least<T: Copy>(
    candidates: impl IntoIterator<Item = T>,
    draw: impl Fn(T) -> u64,
) -> Option<T> {
    candidates
        .into_iter()
        .min_by_key(|&candidate| draw(candidate))
}

/// The pairs of a schedule: text indices and the cosine they are pulled to, in the order they
/// are taught. Per round each text is paired with a text of its class, and with one of
/// another: half the time a rival (one of the texts of other classes nearest it before
/// tuning: the mild insult beside the strong one, the pint of milk beside the pint of ale,
/// which a random pairing seldom meets), else a text of another class, each class as likely.
///
/// Every choice, and a pair's place in the order, is drawn from the keys of the texts and
/// classes it is between ([`draw`], [`least`]), not from one random sequence over the whole
/// policy: an example added to a policy then changes only the few pairs it wins and moves the
/// others along a little, where a sequence would be drawn afresh from that text on and the
/// whole tuning with it.
pub(super) fn pairs(texts: &[Text], schedule: &Schedule) -> Vec<(usize, usize, f32)> {
    let rivals = rivals(texts);
    let mut members: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, text) in texts.iter().enumerate() {
        members.entry(text.class).or_default().push(i);
    }
    let mut drawn: Vec<(u64, usize, usize, f32)> = (0..schedule.rounds)
        .into_par_iter()
        .flat_map_iter(|round| (0..texts.len()).map(move |i| (round, i)))
        .flat_map_iter(|(round, i)| {
            let key = texts[i].key;
            let class = texts[i].class;
            let text_draw =
                |choice: Choice| move |j: &usize| draw(schedule, round, choice, key, texts[*j].key);
            let same = least(&members[&class], text_draw(Choice::OwnClass));
            let other = if draw(schedule, round, Choice::RivalOrClass, key, 0) & 1 == 0 {
                least(&rivals[i], text_draw(Choice::Rival))
            } else {
                least(members.keys().filter(|&&c| c != class), |c: &u64| {
                    draw(schedule, round, Choice::OtherClass, key, *c)
                })
                .and_then(|c| least(&members[c], text_draw(Choice::OtherText)))
            };
            [same.map(|j| (*j, 1.0)), other.map(|j| (*j, 0.0))]
                .into_iter()
                .flatten()
                .map(move |(j, target)| {
                    let order = draw(schedule, round, Choice::Order, key, texts[j].key);
                    (order, i, j, target)
                })
        })
        .collect();
    drawn.par_sort_unstable_by_key(|&(order, a, b, _)| (order, a, b));
    drawn
        .into_iter()
        .map(|(_, a, b, target)| (a, b, target))
        .collect()
}
