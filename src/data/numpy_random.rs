//! A bit-exact reproduction of numpy's legacy `RandomState` (MT19937) for the few calls the LDAM-DRW / BCL
//! CIFAR-LT code makes: `np.random.seed(int)` then `np.random.shuffle` of 1-d index arrays. Matching it lets
//! `bcl` keep exactly the same long-tailed subset as the reference Python code, not merely one with equal counts.

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// The 32-bit Mersenne Twister, seeded and stepped as numpy's legacy `RandomState` does.
#[derive(Clone)]
pub struct Mt19937 {
    key: [u32; N],
    pos: usize,
}

impl Mt19937 {
    /// The state of `np.random.seed(seed)` / `RandomState(seed)` for an integer seed (numpy's `mt19937_seed`,
    /// i.e. the reference `init_genrand`; not the `SeedSequence` seeding of `np.random.MT19937(seed)`).
    pub fn new(seed: u32) -> Self {
        let mut key = [0u32; N];
        key[0] = seed;
        for i in 1..N {
            key[i] = 1_812_433_253u32.wrapping_mul(key[i - 1] ^ (key[i - 1] >> 30)).wrapping_add(i as u32);
        }
        Self { key, pos: N }
    }

    /// Regenerates all 624 words at once, as the reference `genrand_int32` does.
    fn twist(&mut self) {
        let mag = |y: u32| if y & 1 == 1 { MATRIX_A } else { 0 };
        for i in 0..N {
            let y = (self.key[i] & UPPER_MASK) | (self.key[(i + 1) % N] & LOWER_MASK);
            self.key[i] = self.key[(i + M) % N] ^ (y >> 1) ^ mag(y);
        }
        self.pos = 0;
    }

    /// The next raw 32-bit output (numpy's `next_uint32`, `random_raw` of a legacy-seeded `MT19937`).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.twist();
        }
        let mut y = self.key[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// numpy's `next_uint64` for MT19937: the first 32-bit draw is the high word.
    fn next_u64(&mut self) -> u64 {
        let hi = self.next_u32() as u64;
        (hi << 32) | self.next_u32() as u64
    }

    /// A uniform integer in `0..=max` by numpy's `random_interval`: draws masked to the smallest covering power
    /// of two, rejected while above `max`; 32-bit draws when `max` fits in 32 bits, 64-bit draws otherwise.
    fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mask = u64::MAX >> max.leading_zeros();
        loop {
            let value = if max <= 0xffff_ffff { self.next_u32() as u64 } else { self.next_u64() } & mask;
            if value <= max {
                return value;
            }
        }
    }

    /// `RandomState.shuffle` of a 1-d array: Fisher–Yates from the last element, swapping `i` with
    /// `interval(i)` for `i = n-1, …, 1`.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.interval(i as u64) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_outputs_match_numpy() {
        // np.random.RandomState(s).randint(0, 2**32, size=5, dtype=np.uint64)
        for (seed, want) in [(0, RAW_0), (1, RAW_1)] {
            let mut rng = Mt19937::new(seed);
            let got: Vec<u32> = (0..5).map(|_| rng.next_u32()).collect();
            assert_eq!(got, want, "seed {seed}");
        }
    }

    #[test]
    fn wide_interval_matches_numpy() {
        // np.random.RandomState(0).randint(0, 2**64, size=2, dtype=np.uint64): the raw next_uint64 pairs.
        let mut rng = Mt19937::new(0);
        let got: Vec<u64> = (0..2).map(|_| rng.interval(u64::MAX)).collect();
        assert_eq!(got, WIDE_0);
    }

    #[test]
    fn shuffle_matches_numpy() {
        // a = np.arange(10); np.random.seed(s); np.random.shuffle(a)
        for (seed, want) in [(0, SHUFFLE_0), (1, SHUFFLE_1)] {
            let mut items: Vec<usize> = (0..10).collect();
            Mt19937::new(seed).shuffle(&mut items);
            assert_eq!(items, want, "seed {seed}");
        }
    }

    const RAW_0: [u32; 5] = [2357136044, 2546248239, 3071714933, 3626093760, 2588848963];
    const RAW_1: [u32; 5] = [1791095845, 4282876139, 3093770124, 4005303368, 491263];
    const WIDE_0: [u64; 2] = [0x8c7f_0aac_97c4_aa2f, 0xb716_a675_d821_ccc0];
    const SHUFFLE_0: [usize; 10] = [2, 8, 4, 9, 1, 6, 7, 3, 0, 5];
    const SHUFFLE_1: [usize; 10] = [2, 9, 6, 4, 0, 3, 1, 7, 8, 5];
}
