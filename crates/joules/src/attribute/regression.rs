//! Power per column by non-negative least squares over the counter's intervals.
//!
//! Time-share gives every busy thread the same power. Here the base (idle) column and every
//! span path get their own power, read from how the energy of the counter's intervals varies
//! with the time each column was active in them: `dE_k = Σ_j P_j·x_kj + noise`, `P_j ≥ 0`.
//!
//! The normal equations are summed as intervals come, and each interval is kept in compact
//! form (its energy and nonzero entries) for the covariance, which is estimated from the
//! residuals, and for the reweighting of the rare interval whose residual is far beyond the
//! rest (Huber; see [`HUBER`]).
//! Columns the data cannot tell apart are merged into one group that shares a power, rather
//! than split with false confidence, and the estimates keep their covariance so that sums of
//! paths (inclusive energy, totals) get honest intervals.

/// Fraction of a unit-scaled column's squared norm that must remain after projecting it onto
/// the columns accepted before it, or it is merged. The remainder is `1/VIF`: below 1e-3 the
/// column's standard error is over 30 times what it would be on its own, and what tells it
/// apart is a few parts in a thousand of its pattern. That is the order of the timing errors
/// the model ignores (span clocks against counter steps, jitter of the counter's period), so
/// a split resting on it can be biased in ways the standard error does not show; the group's
/// common power is what the data do determine. Exactly proportional columns (a loop
/// phase-locked to the counter) sit at rounding level, 1e-6 with 0.1% jitter; layers that mix
/// at random sit above 0.1 (0.17 to 0.77 in the tests' simulation). The bound also caps the
/// conditioning of the scaled Gram, which keeps the Cholesky solves accurate.
const COLLINEAR: f64 = 1e-3;

/// Adjacent intervals per cluster of the covariance estimate (see `solve`).
const CLUSTER: usize = 8;

/// Residuals beyond this many robust standard deviations (1.4826 × the median absolute
/// residual) are down-weighted, by this bound over their size (Huber's weights). A counter's errors are
/// mostly small and even (quantisation, power noise), but now and then one interval is off
/// by ten or twenty times that: a step stamped within bounds but wrongly, a burst of
/// background work, an interrupt. Least squares lets such an interval move a short layer's
/// power by several percent and widens every interval; four deviations leave ordinary
/// intervals alone (their spread differs with their length and power) and cap the rare ones.
const HUBER: f64 = 4.0;
/// Reweighting rounds at most (each a weighted solve over the stored intervals).
const ROBUST_ROUNDS: usize = 4;
/// Intervals per live group (at least five groups counted) below which the fit is not
/// reweighted.
const MIN_ROWS_PER_GROUP: usize = 10;
/// Residuals the robust scale is taken from, at most (an even subsample).
const SCALE_SAMPLE: usize = 20_000;

/// Normal equations of one fit, accumulated interval by interval.
#[derive(Clone, Debug)]
pub struct Design {
    columns: usize,
    /// `XᵀX`, row-major; kept full (not a triangle) so that `add` needs no branch.
    gram: Vec<f64>,
    xty: Vec<f64>,
    yty: f64,
    n: usize,
    skipped: usize,
    /// Every interval, kept for the covariance: its energy, where its entries start in
    /// `entries`, its `(column, seconds)` entries, and whether it starts where the previous
    /// one ends. A counter's errors are shared by adjacent intervals (a quantisation or a
    /// misplaced step takes from one what it gives the next) and grow where power changes
    /// most, so the covariance is estimated from the residuals themselves, lag 1 included.
    rows_y: Vec<f64>,
    rows_at: Vec<u32>,
    entries: Vec<(u32, f32)>,
    follows: Vec<bool>,
}

/// Designs are equal when their sums and rows are.
impl PartialEq for Design {
    fn eq(&self, o: &Self) -> bool {
        (self.columns, &self.gram, &self.xty, self.yty, self.n, self.skipped)
            == (o.columns, &o.gram, &o.xty, o.yty, o.n, o.skipped)
            && (&self.rows_y, &self.rows_at, &self.entries, &self.follows)
                == (&o.rows_y, &o.rows_at, &o.entries, &o.follows)
    }
}

impl Design {
    /// An empty design over `columns` columns (column 0 is, by convention, the base).
    pub fn new(columns: usize) -> Self {
        Design {
            columns,
            gram: vec![0.0; columns * columns],
            xty: vec![0.0; columns],
            yty: 0.0,
            n: 0,
            skipped: 0,
            rows_y: Vec::new(),
            rows_at: vec![0],
            entries: Vec::new(),
            follows: Vec::new(),
        }
    }

    /// An empty design with room for `rows` intervals of a few entries each.
    pub fn with_capacity(columns: usize, rows: usize) -> Self {
        let mut d = Design::new(columns);
        d.rows_y.reserve(rows);
        d.rows_at.reserve(rows);
        d.follows.reserve(rows);
        d.entries.reserve(rows * 6);
        d
    }

    /// `XᵀX`, `Xᵀy` and the number of rows, for tests that compare two ways of filling one.
    #[cfg(test)]
    pub(crate) fn sums(&self) -> (&[f64], &[f64], usize) {
        (&self.gram, &self.xty, self.n)
    }

    /// The number of columns.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// As [`Design::add`], for an interval that starts where the last one added ends.
    pub fn add_following(&mut self, energy: f64, row: &[(usize, f64)]) {
        if self.add_row(energy, row)
            && let Some(f) = self.follows.last_mut()
        {
            *f = self.n > 1;
        }
    }

    /// One interval: its energy in joules and its sparse row of `(column, seconds)`.
    ///
    /// A column should appear at most once; one listed twice counts with the sum of its
    /// seconds. An interval with a non-finite energy or time is left out and counted by
    /// [`Design::skipped`]: one NaN would poison every sum it entered.
    ///
    /// # Panics
    /// If a column is out of range.
    pub fn add(&mut self, energy: f64, row: &[(usize, f64)]) {
        self.add_row(energy, row);
    }

    /// Adds a row (not following any); false if it was left out.
    fn add_row(&mut self, energy: f64, row: &[(usize, f64)]) -> bool {
        let p = self.columns;
        assert!(row.iter().all(|&(j, _)| j < p), "column out of range: the design has {p} columns");
        if !energy.is_finite() || row.iter().any(|&(_, x)| !x.is_finite()) {
            self.skipped += 1;
            return false;
        }
        self.rows_y.push(energy);
        self.entries.extend(row.iter().map(|&(j, x)| (j as u32, x as f32)));
        self.rows_at.push(self.entries.len() as u32);
        self.follows.push(false);
        // Every ordered pair rather than one triangle: a repeated column then adds (a + b)²
        // exactly as its summed entry would, and the matrix stays bitwise symmetric.
        for &(i, xi) in row {
            self.xty[i] += energy * xi;
            let gram_row = &mut self.gram[i * p..(i + 1) * p];
            for &(j, xj) in row {
                gram_row[j] += xi * xj;
            }
        }
        self.yty += energy * energy;
        self.n += 1;
        true
    }

    /// The number of intervals added.
    pub fn intervals(&self) -> usize {
        self.n
    }

    /// The number of intervals [`Design::add`] left out for a non-finite energy or time.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Adds another design's intervals (same column count), so fits can pool windows.
    ///
    /// # Panics
    /// If the column counts differ.
    pub fn absorb(&mut self, other: &Design) {
        assert_eq!(self.columns, other.columns, "designs over different columns");
        for (a, b) in self.gram.iter_mut().zip(&other.gram) {
            *a += b;
        }
        for (a, b) in self.xty.iter_mut().zip(&other.xty) {
            *a += b;
        }
        self.yty += other.yty;
        self.n += other.n;
        self.skipped += other.skipped;
        let base = self.entries.len() as u32;
        self.rows_y.extend_from_slice(&other.rows_y);
        self.entries.extend_from_slice(&other.entries);
        self.rows_at.extend(other.rows_at[1..].iter().map(|&at| at + base));
        let first = self.follows.len();
        self.follows.extend_from_slice(&other.follows);
        // The other's first interval does not follow this one's last.
        if let Some(f) = self.follows.get_mut(first) {
            *f = false;
        }
    }
}

/// The solved powers and their uncertainty.
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    /// Watts per column; the columns of a merged group all carry the group's power.
    pub power: Vec<f64>,
    /// Per column, the group it was solved in: the index of the group's first (lowest,
    /// representative) column. A column on its own has `group[j] == j`.
    pub group: Vec<usize>,
    /// Per column: never active in any interval (its power is 0 and meaningless).
    pub unseen: Vec<bool>,
    /// Per column: held at 0 W by the non-negativity constraint.
    pub clamped: Vec<bool>,
    /// `p×p` row-major covariance of `power` (W²). Members of one group share the group's
    /// row/column; unseen columns have zeros. A group whose members cancel exactly (possible
    /// only through negative base entries) has no determined power: 0 W, infinite variance.
    pub cov: Vec<f64>,
    /// Residual variance per interval (J²), with the outlier weights (see [`HUBER`]).
    pub sigma2: f64,
    /// Degrees of freedom of the residuals (intervals minus free groups).
    pub dof: f64,
    /// Intervals used.
    pub intervals: usize,
    /// Intervals the outlier reweighting gave a weight below 1 (see [`HUBER`]).
    pub downweighted: usize,
}

impl Fit {
    /// Variance of `Σ_j c[j]·power[j]` (W² times the unit of `c` squared), from `cov`.
    ///
    /// # Panics
    /// If `c` does not have one entry per column.
    pub fn variance(&self, c: &[f64]) -> f64 {
        let p = self.power.len();
        assert_eq!(c.len(), p, "one coefficient per column");
        let mut v = 0.0;
        // Zero coefficients are skipped, not multiplied: an undetermined group's infinite
        // variance must not turn a sum that leaves it out into NaN; one it enters is
        // undetermined too.
        for (i, &ci) in c.iter().enumerate().filter(|&(_, &ci)| ci != 0.0) {
            if self.cov[i * p + i].is_infinite() {
                return f64::INFINITY;
            }
            for (j, &cj) in c.iter().enumerate().filter(|&(_, &cj)| cj != 0.0) {
                v += ci * cj * self.cov[i * p + j];
            }
        }
        // The covariance is positive semi-definite (see `solve`); only rounding can take a
        // sum below 0.
        v.max(0.0)
    }

    /// Standard error of `power[j]` (W).
    pub fn std_error(&self, j: usize) -> f64 {
        self.cov[j * self.power.len() + j].max(0.0).sqrt()
    }

    /// The p-value of "the seen, solved, separate columns all draw the same power" (a Wald
    /// test on their differences with this fit's covariance); 1 with fewer than two.
    pub fn equal_power_p_value(&self) -> f64 {
        let p = self.power.len();
        let cols: Vec<usize> =
            (0..p).filter(|&j| !self.unseen[j] && self.group[j] == j && !self.clamped[j]).collect();
        let k = cols.len();
        if k < 2 {
            return 1.0;
        }
        // Differences from the first: d = C P, Var(d) = C Σ Cᵀ.
        let d: Vec<f64> = cols[1..].iter().map(|&j| self.power[j] - self.power[cols[0]]).collect();
        let c0 = cols[0];
        let var: Vec<f64> = (0..(k - 1) * (k - 1))
            .map(|ab| {
                let (a, b) = (cols[1 + ab / (k - 1)], cols[1 + ab % (k - 1)]);
                self.cov[a * p + b] - self.cov[a * p + c0] - self.cov[c0 * p + b] + self.cov[c0 * p + c0]
            })
            .collect();
        let Some(inv) = inverse(&var, k - 1) else { return 0.0 };
        let w: f64 = (0..k - 1).map(|a| d[a] * dot(&inv[a * (k - 1)..(a + 1) * (k - 1)], &d)).sum();
        use statrs::distribution::{ChiSquared, ContinuousCDF};
        ChiSquared::new((k - 1) as f64).map_or(0.0, |chi| 1.0 - chi.cdf(w.max(0.0)))
    }

    /// True if every seen, solved, separate column's power is known to within `rel` of
    /// their mean power (half its 95% interval, on a normal approximation).
    pub fn powers_known_within(&self, rel: f64) -> bool {
        let p = self.power.len();
        let cols: Vec<usize> =
            (0..p).filter(|&j| !self.unseen[j] && self.group[j] == j && !self.clamped[j]).collect();
        if cols.is_empty() {
            return false;
        }
        let mean = cols.iter().map(|&j| self.power[j]).sum::<f64>() / cols.len() as f64;
        mean > 0.0 && cols.iter().all(|&j| 1.96 * self.std_error(j) <= rel * mean)
    }

    /// True if column `j` shares its power with other columns (a merged group).
    pub fn merged(&self, j: usize) -> bool {
        self.group.iter().enumerate().any(|(i, &g)| i != j && g == self.group[j])
    }
}

/// Solves `d`: non-negative least squares, then reweighted against outlying intervals
/// (see [`HUBER`]), with a cluster-robust covariance. None when there is nothing to solve (no interval, or no column ever active),
/// when there are not more intervals than free groups (no residual degrees of freedom), or,
/// which the merging of collinear columns should rule out, when a system is numerically
/// singular.
pub fn solve(d: &Design) -> Option<Fit> {
    let p = d.columns;
    let unseen: Vec<bool> = (0..p).map(|j| d.gram[j * p + j] <= 0.0).collect();
    let seen: Vec<usize> = (0..p).filter(|&j| !unseen[j]).collect();
    if d.n == 0 || seen.is_empty() {
        return None;
    }
    let groups = group_columns(d, &seen);
    let k = groups.len();
    let (h, hb) = group_normal(d, &groups);
    // Solved in unit-norm scaling: a 10 µs layer and a 100 ms layer then weigh alike in the
    // pivots and tolerances, and the Gram has a unit diagonal.
    let live: Vec<usize> = (0..k).filter(|&a| h[a * k + a] > 0.0).collect();
    let m = live.len();
    let norm: Vec<f64> = live.iter().map(|&a| h[a * k + a].sqrt()).collect();
    let c: Vec<f64> =
        (0..m * m).map(|ij| h[live[ij / m] * k + live[ij % m]] / (norm[ij / m] * norm[ij % m])).collect();
    let cb: Vec<f64> = (0..m).map(|i| hb[live[i]] / norm[i]).collect();

    let (beta, free) = nnls(&c, &cb, m)?;
    // Per column: its group's live position.
    let mut col_live = vec![None; p];
    for (a, members) in groups.iter().enumerate() {
        if let Some(i) = live.iter().position(|&l| l == a) {
            for &j in members {
                col_live[j] = Some(i);
            }
        }
    }
    let row_z = |r: usize, z: &mut Vec<(usize, f64)>| {
        z.clear();
        for &(j, x) in &d.entries[d.rows_at[r] as usize..d.rows_at[r + 1] as usize] {
            if let Some(a) = col_live[j as usize] {
                let v = f64::from(x) / norm[a];
                match z.iter_mut().find(|(q, _)| *q == a) {
                    Some((_, acc)) => *acc += v,
                    None => z.push((a, v)),
                }
            }
        }
    };
    let col_watts = |j: usize, beta: &[f64]| col_live[j].map_or(0.0, |a: usize| beta[a] / norm[a]);
    let (c, cb, beta, free, yty, weights) = reweigh(d, m, &row_z, &col_watts, (c, cb, beta, free));
    let nfree = free.iter().filter(|&&f| f).count();
    if d.n <= nfree {
        return None;
    }
    let dof = (d.n - nfree) as f64;
    let fitted: f64 = (0..m).map(|i| beta[i] * dot(&c[i * m..(i + 1) * m], &beta)).sum();
    // yᵀy - 2βᵀb + βᵀGβ cancels heavily when the fit is good; rounding can leave it below 0.
    let rss = (yty - 2.0 * dot(&beta, &cb) + fitted).max(0.0);
    let sigma2 = rss / dof;

    let mut cov_s = vec![0.0; m * m];
    let fi: Vec<usize> = (0..m).filter(|&i| free[i]).collect();
    let nf = fi.len();
    let inv = inverse(&principal(&c, m, &fi), nf)?;
    // The covariance from the residuals (a sandwich, G⁻¹ M G⁻¹ over the free groups):
    // each interval's squared residual weighs its own regressors, and adjacent intervals'
    // residual products their cross terms. A plain σ²G⁻¹ assumes equal, independent errors;
    // a counter's are neither (see `Design::rows_y`), and the plain form was measured to
    // under-cover short layers and over-cover long ones.
    // Per column: its group's live position and that group's position among the free.
    let col_pos: Vec<Option<(usize, usize)>> = col_live
        .iter()
        .map(|l| l.and_then(|i| fi.iter().position(|&f| f == i).map(|fpos| (i, fpos))))
        .collect();
    // Adjacent intervals are summed in clusters of up to CLUSTER (a run of intervals each
    // starting where the last ended) before their outer product enters the meat: a
    // cluster-robust estimate, positive semi-definite by construction, that keeps the lag-1
    // covariance inside each cluster ((CLUSTER-1)/CLUSTER of it) and each interval's own.
    let flush = |cluster: &mut [f64], touched: &mut Vec<usize>, meat: &mut [f64]| {
        for &a in touched.iter() {
            for &b in touched.iter() {
                meat[a * nf + b] += cluster[a] * cluster[b];
            }
        }
        for &a in touched.iter() {
            cluster[a] = 0.0;
        }
        touched.clear();
    };
    // The meat of rows `range`, which starts a cluster and ends one.
    let meat_of = |range: std::ops::Range<usize>| -> Vec<f64> {
        let mut meat = vec![0.0; nf * nf];
        let mut z: Vec<(usize, f64)> = Vec::new();
        let mut cluster = vec![0.0; nf];
        let mut touched: Vec<usize> = Vec::new();
        let mut size = 0;
        for r in range {
            z.clear();
            let mut fitted = 0.0;
            for &(j, x) in &d.entries[d.rows_at[r] as usize..d.rows_at[r + 1] as usize] {
                let j = j as usize;
                if let Some(a) = col_live[j] {
                    fitted += beta[a] * f64::from(x) / norm[a];
                }
                if let Some((i, fpos)) = col_pos[j] {
                    let v = f64::from(x) / norm[i];
                    match z.iter_mut().find(|(q, _)| *q == fpos) {
                        Some((_, acc)) => *acc += v,
                        None => z.push((fpos, v)),
                    }
                }
            }
            // HC2: a residual is smaller than its error by its leverage h = w·zᵀG⁻¹z; dividing
            // by √(1-h) undoes that (rows where a rare layer shows up have the most). A
            // down-weighted interval enters with its weight (Huber's ψ = w·e).
            let w = weights.as_ref().map_or(1.0, |w| w[r]);
            let h: f64 = w * z
                .iter()
                .map(|&(a, za)| z.iter().map(|&(b, zb)| za * inv[a * nf + b] * zb).sum::<f64>())
                .sum::<f64>();
            let e = w * (d.rows_y[r] - fitted) / (1.0 - h.min(0.99)).sqrt();
            if !d.follows[r] || size == CLUSTER {
                flush(&mut cluster, &mut touched, &mut meat);
                size = 0;
            }
            for &(a, za) in &z {
                if cluster[a] == 0.0 && !touched.contains(&a) {
                    touched.push(a);
                }
                cluster[a] += e * za;
            }
            size += 1;
        }
        flush(&mut cluster, &mut touched, &mut meat);
        meat
    };
    let mut meat = vec![0.0; nf * nf];
    for part in in_parts(&cluster_bounds(&d.follows, parallel_parts(d.n)), meat_of) {
        for (m, x) in meat.iter_mut().zip(part) {
            *m += x;
        }
    }
    let mut t = vec![0.0; nf * nf];
    for a in 0..nf {
        for b in 0..nf {
            t[a * nf + b] = (0..nf).map(|e| inv[a * nf + e] * meat[e * nf + b]).sum();
        }
    }
    let mut sandwich = vec![0.0; nf * nf];
    for a in 0..nf {
        for b in 0..nf {
            sandwich[a * nf + b] = (0..nf).map(|e| t[a * nf + e] * inv[e * nf + b]).sum::<f64>();
        }
    }
    for a in 0..nf {
        for b in 0..a {
            let v = 0.5 * (sandwich[a * nf + b] + sandwich[b * nf + a]);
            (sandwich[a * nf + b], sandwich[b * nf + a]) = (v, v);
        }
    }
    // A variance of 0 (all residuals 0, or rounding) falls back to the plain form rather than
    // claim a figure is exact.
    let sane = (0..nf).all(|a| sandwich[a * nf + a] > 0.0 && sandwich[a * nf + a].is_finite());
    for (a, &i) in fi.iter().enumerate() {
        for (b, &j) in fi.iter().enumerate() {
            cov_s[i * m + j] = if sane { sandwich[a * nf + b] } else { sigma2 * inv[a * nf + b] };
        }
    }
    if fi.len() < m {
        // A clamped group's power is pinned at 0 by the constraint, not by the data; a zero
        // variance would claim it is known exactly. Its unconstrained variance says how far
        // from 0 the data would let it be.
        let inv = inverse(&c, m)?;
        for i in (0..m).filter(|&i| !free[i]) {
            cov_s[i * m + i] = sigma2 * inv[i * m + i];
        }
    }

    // Per group: its position among the live groups; per column: its group.
    let mut pos = vec![None; k];
    for (i, &a) in live.iter().enumerate() {
        pos[a] = Some(i);
    }
    let mut group: Vec<usize> = (0..p).collect();
    let mut of = vec![None; p];
    for (a, members) in groups.iter().enumerate() {
        for &j in members {
            group[j] = members[0];
            of[j] = Some(a);
        }
    }
    let at = |j: usize| of[j].and_then(|a: usize| pos[a]);
    let power = (0..p).map(|j| at(j).map_or(0.0, |i| beta[i] / norm[i])).collect();
    let clamped = (0..p).map(|j| at(j).is_some_and(|i| !free[i])).collect();
    let mut cov = vec![0.0; p * p];
    for i in (0..p).filter(|&i| of[i].is_some()) {
        for j in (0..p).filter(|&j| of[j].is_some()) {
            cov[i * p + j] = match (at(i), at(j)) {
                (Some(u), Some(v)) => cov_s[u * m + v] / (norm[u] * norm[v]),
                _ if of[i] == of[j] => f64::INFINITY,
                _ => 0.0,
            };
        }
    }
    let downweighted = weights.as_ref().map_or(0, |w| w.iter().filter(|&&x| x < 1.0).count());
    Some(Fit { power, group, unseen, clamped, cov, sigma2, dof, intervals: d.n, downweighted })
}

/// The live groups' scaled normal equations and solution: `(c, cb, β, free)`.
type Solved = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<bool>);

/// Huber reweighting (see [`HUBER`]) of a least-squares solution: returns the weighted
/// normal equations, their solution, the weighted `yᵀy`, and the weights (`None` when no
/// interval needed one). `row_z` gives an interval's regressors in the solve's scaling.
///
/// The weighted sums are the unweighted ones less `(1 − w)` of each down-weighted row, so
/// a round costs one pass over the residuals plus the few rows it touches. A round whose
/// solve fails keeps the previous one; a fit with few intervals per group (whose median
/// residual is itself uncertain) is not reweighted.
#[allow(clippy::type_complexity)]
fn reweigh(
    d: &Design,
    m: usize,
    row_z: &dyn Fn(usize, &mut Vec<(usize, f64)>),
    col_watts: &dyn Fn(usize, &[f64]) -> f64,
    first: Solved,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<bool>, f64, Option<Vec<f64>>) {
    let (c0, cb0) = (first.0.clone(), first.1.clone());
    let (mut c, mut cb, mut beta, mut free) = first;
    let mut yty = d.yty;
    let mut weights: Option<Vec<f64>> = None;
    if d.n < MIN_ROWS_PER_GROUP * m.max(5) {
        return (c, cb, beta, free, yty, weights);
    }
    let mut z = Vec::new();
    let mut residuals = vec![0.0; d.n];
    // The scale comes from an even subsample: its median is as good a scale, and sorting a
    // million residuals per round is most of a round's cost.
    let stride = (d.n / SCALE_SAMPLE).max(1);
    let mut sample = Vec::with_capacity(d.n / stride + 1);
    for _ in 0..ROBUST_ROUNDS {
        // Watts per stored column, so that a residual is one pass over a row's entries.
        let watts: Vec<f64> = (0..d.columns).map(|j| col_watts(j, &beta)).collect();
        let chunk = d.n.div_ceil(parallel_parts(d.n));
        let fill = |k: usize, part: &mut [f64]| {
            for (i, e) in part.iter_mut().enumerate() {
                let r = k * chunk + i;
                let entries = &d.entries[d.rows_at[r] as usize..d.rows_at[r + 1] as usize];
                let fitted: f64 = entries.iter().map(|&(j, x)| watts[j as usize] * f64::from(x)).sum();
                *e = d.rows_y[r] - fitted;
            }
        };
        std::thread::scope(|scope| {
            let mut parts = residuals.chunks_mut(chunk).enumerate();
            let first = parts.next();
            for (k, part) in parts {
                scope.spawn(move || fill(k, part));
            }
            if let Some((k, part)) = first {
                fill(k, part);
            }
        });
        sample.clear();
        sample.extend(residuals.iter().step_by(stride).map(|e| e.abs()));
        let mid = sample.len() / 2;
        let scale = 1.4826 * *sample.select_nth_unstable_by(mid, f64::total_cmp).1;
        // Residuals at the rounding of the stored rows (seconds kept as f32: an exact fit)
        // have no outliers worth the name; reweighting from those rows would only round.
        if !(scale > 1e-6 * (d.yty / d.n as f64).sqrt() && scale.is_finite()) {
            break;
        }
        let cut = HUBER * scale;
        let w: Vec<f64> =
            residuals.iter().map(|e| if e.abs() <= cut { 1.0 } else { cut / e.abs() }).collect();
        let settled = match &weights {
            None => w.iter().all(|&x| x == 1.0),
            Some(old) => old.iter().zip(&w).all(|(a, b)| (a - b).abs() < 1e-3),
        };
        if settled {
            break;
        }
        let (mut cw, mut cbw, mut ytyw) = (c0.clone(), cb0.clone(), d.yty);
        for (r, &wr) in w.iter().enumerate().filter(|&(_, &wr)| wr < 1.0) {
            row_z(r, &mut z);
            let (y, off) = (d.rows_y[r], 1.0 - wr);
            ytyw -= off * y * y;
            for &(a, za) in &z {
                cbw[a] -= off * za * y;
                for &(b, zb) in &z {
                    cw[a * m + b] -= off * za * zb;
                }
            }
        }
        let Some((b2, f2)) = nnls(&cw, &cbw, m) else { break };
        (c, cb, beta, free, yty) = (cw, cbw, b2, f2, ytyw);
        weights = Some(w);
    }
    (c, cb, beta, free, yty, weights)
}

/// Rows per thread, at least, of a pass over a fit's rows: fewer go in one part.
const ROWS_PER_PART: usize = 1 << 18;

#[cfg(test)]
thread_local! {
    /// Parts every pass is split into on this thread, if set (tests of the split).
    static FORCE_PARTS: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// How many threads a pass over `rows` rows is split over.
fn parallel_parts(rows: usize) -> usize {
    #[cfg(test)]
    if let Some(parts) = FORCE_PARTS.with(std::cell::Cell::get) {
        return parts.min(rows).max(1);
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from).min(8);
    threads.min(rows / ROWS_PER_PART).max(1)
}

/// Splits `0..follows.len()` into up to `parts` ranges of about equal length, each starting
/// where the covariance's clusters start (see `solve`), so that each range's clusters are
/// those of one pass over all rows.
fn cluster_bounds(follows: &[bool], parts: usize) -> Vec<std::ops::Range<usize>> {
    let n = follows.len();
    let mut bounds = vec![0];
    let mut size = 0;
    for (r, &f) in follows.iter().enumerate() {
        if !f || size == CLUSTER {
            size = 0;
            if r * parts >= n * bounds.len() && r > *bounds.last().unwrap_or(&0) {
                bounds.push(r);
            }
        }
        size += 1;
    }
    bounds.push(n);
    bounds.windows(2).map(|w| w[0]..w[1]).collect()
}

/// `f` of each range, the first on this thread and the rest on threads of their own.
fn in_parts<T: Send>(
    ranges: &[std::ops::Range<usize>],
    f: impl Fn(std::ops::Range<usize>) -> T + Sync,
) -> Vec<T> {
    let Some((first, rest)) = ranges.split_first() else { return Vec::new() };
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = rest.iter().map(|r| scope.spawn(move || f(r.clone()))).collect();
        let mut out = vec![f(first.clone())];
        out.extend(handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))));
        out
    })
}

/// Partitions the seen columns into groups whose summed regressors are separable.
///
/// A pivoted Gram–Schmidt on the unit-scaled Gram takes the groups in decreasing norm order,
/// so that the columns carrying the most time anchor the basis; one left with less than
/// [`COLLINEAR`] of itself after projection onto those accepted is merged into the accepted
/// group it is most aligned with (highest cosine). A merge changes the merged regressor, so
/// passes repeat until one merges nothing; each merge removes a group, so this ends.
fn group_columns(d: &Design, seen: &[usize]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = seen.iter().map(|&j| vec![j]).collect();
    loop {
        let k = groups.len();
        let (h, _) = group_normal(d, &groups);
        let norm: Vec<f64> = (0..k).map(|a| h[a * k + a].max(0.0).sqrt()).collect();
        let mut order: Vec<usize> = (0..k).filter(|&a| norm[a] > 0.0).collect();
        order.sort_by(|&a, &b| norm[b].total_cmp(&norm[a]).then(a.cmp(&b)));
        // Cholesky factor (stride k) of the accepted groups' unit-scaled Gram, grown by rows.
        let mut l = vec![0.0; k * k];
        let mut accepted: Vec<usize> = Vec::new();
        let mut into: Vec<Option<usize>> = vec![None; k];
        for &g in &order {
            let cos: Vec<f64> = accepted.iter().map(|&a| h[a * k + g] / (norm[a] * norm[g])).collect();
            let mut z = cos.clone();
            for i in 0..z.len() {
                z[i] = (z[i] - dot(&l[i * k..i * k + i], &z[..i])) / l[i * k + i];
            }
            let left = 1.0 - dot(&z, &z);
            let m = accepted.len();
            if left >= COLLINEAR {
                l[m * k..m * k + m].copy_from_slice(&z);
                l[m * k + m] = left.sqrt();
                accepted.push(g);
            } else {
                // The first group in order is always accepted (nothing to project onto).
                let best = (0..m).max_by(|&a, &b| cos[a].total_cmp(&cos[b])).expect("an accepted group");
                into[g] = Some(accepted[best]);
            }
        }
        if into.iter().all(Option::is_none) {
            for members in &mut groups {
                members.sort_unstable();
            }
            groups.sort_unstable_by_key(|members| members[0]);
            return groups;
        }
        let mut slot = vec![0; k];
        let mut next: Vec<Vec<usize>> = Vec::new();
        for a in (0..k).filter(|&a| into[a].is_none()) {
            slot[a] = next.len();
            next.push(std::mem::take(&mut groups[a]));
        }
        for a in 0..k {
            if let Some(t) = into[a] {
                next[slot[t]].append(&mut groups[a]);
            }
        }
        groups = next;
    }
}

/// The normal equations of the groups' summed regressors: `k×k` Gram and `Xᵀy`.
fn group_normal(d: &Design, groups: &[Vec<usize>]) -> (Vec<f64>, Vec<f64>) {
    let (p, k) = (d.columns, groups.len());
    let mut h = vec![0.0; k * k];
    let mut hb = vec![0.0; k];
    for (a, ga) in groups.iter().enumerate() {
        hb[a] = ga.iter().map(|&i| d.xty[i]).sum();
        for (b, gb) in groups.iter().enumerate() {
            h[a * k + b] = ga.iter().flat_map(|&i| gb.iter().map(move |&j| d.gram[i * p + j])).sum();
        }
    }
    (h, hb)
}

/// Lawson–Hanson active-set NNLS on the normal equations: minimises `|y - Xβ|²` over `β ≥ 0`
/// from `c = XᵀX` (`m×m`) and `b = Xᵀy`. Returns `β` and which entries are free (not held
/// at 0).
fn nnls(c: &[f64], b: &[f64], m: usize) -> Option<(Vec<f64>, Vec<bool>)> {
    let mut x = vec![0.0; m];
    let mut free = vec![false; m];
    // The gradient is only known to the rounding of the accumulated sums; a pull smaller
    // than this cannot be told from none, and leaves the column at 0.
    let tol = 1e-10 * b.iter().fold(0.0_f64, |a, v| a.max(v.abs()));
    // Exact arithmetic guarantees termination; rounding could make it cycle, hence the cap.
    for _ in 0..3 * (m + 1) {
        let w: Vec<f64> = (0..m).map(|i| b[i] - dot(&c[i * m..(i + 1) * m], &x)).collect();
        let pull = (0..m).filter(|&i| !free[i] && w[i] > tol).max_by(|&i, &j| w[i].total_cmp(&w[j]));
        let Some(j) = pull else { break };
        free[j] = true;
        loop {
            let fi: Vec<usize> = (0..m).filter(|&i| free[i]).collect();
            let mut s_f: Vec<f64> = fi.iter().map(|&i| b[i]).collect();
            cholesky_solve(&cholesky(&principal(c, m, &fi), fi.len())?, fi.len(), &mut s_f);
            let mut s = vec![0.0; m];
            for (&i, v) in fi.iter().zip(s_f) {
                s[i] = v;
            }
            if fi.iter().all(|&i| s[i] > 0.0) {
                x = s;
                break;
            }
            // Step from x toward s as far as feasibility allows; the bound that stops the step
            // leaves the free set, so this inner loop ends.
            let (mut alpha, mut hit) = (f64::INFINITY, fi[0]);
            for &i in fi.iter().filter(|&&i| s[i] <= 0.0) {
                let a = if x[i] > s[i] { x[i] / (x[i] - s[i]) } else { 0.0 };
                if a < alpha {
                    (alpha, hit) = (a, i);
                }
            }
            for (xi, si) in x.iter_mut().zip(&s) {
                *xi += alpha * (si - *xi);
            }
            x[hit] = 0.0;
            free[hit] = false;
            for &i in &fi {
                if x[i] <= 0.0 {
                    (x[i], free[i]) = (0.0, false);
                }
            }
        }
    }
    Some((x, free))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The principal submatrix of the `m×m` matrix `a` on the indices `idx`.
fn principal(a: &[f64], m: usize, idx: &[usize]) -> Vec<f64> {
    idx.iter().flat_map(|&i| idx.iter().map(move |&j| a[i * m + j])).collect()
}

/// Lower Cholesky factor of the `n×n` symmetric matrix `a`; None unless it is numerically
/// positive definite.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s = a[i * n + j] - dot(&l[i * n..i * n + j], &l[j * n..j * n + j]);
            if i == j {
                // A pivot at rounding level of its diagonal means a dependent column; its
                // square root would be noise, and dividing by it would amplify that noise.
                if s.is_nan() || s <= f64::EPSILON * a[i * n + i] {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Solves `L Lᵀ x = b` in place.
fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        b[i] = (b[i] - dot(&l[i * n..i * n + i], &b[..i])) / l[i * n + i];
    }
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|t| l[t * n + i] * b[t]).sum();
        b[i] = (b[i] - s) / l[i * n + i];
    }
}

/// Inverse of the `n×n` symmetric positive definite matrix `a`.
fn inverse(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let l = cholesky(a, n)?;
    let mut inv = vec![0.0; n * n];
    let mut e = vec![0.0; n];
    for j in 0..n {
        e.iter_mut().enumerate().for_each(|(i, v)| *v = if i == j { 1.0 } else { 0.0 });
        cholesky_solve(&l, n, &mut e);
        for (i, v) in e.iter().enumerate() {
            inv[i * n + j] = *v;
        }
    }
    // Rounding leaves the two triangles a few ulps apart; a covariance should be symmetric.
    for i in 0..n {
        for j in 0..i {
            let v = 0.5 * (inv[i * n + j] + inv[j * n + i]);
            (inv[i * n + j], inv[j * n + i]) = (v, v);
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64, with Box–Muller for normal draws: deterministic, no crates.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in [0, 1).
        fn uniform(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }

        fn gauss(&mut self) -> f64 {
            let u = 1.0 - self.uniform();
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
        }
    }

    /// A layer of the simulated workload: span length (s), power while it runs (W), and how
    /// often it is picked.
    struct Layer {
        len: f64,
        watts: f64,
        weight: f64,
    }

    const BASE_W: f64 = 10.0;
    /// The RAPL energy unit of many Intel parts.
    const UNIT: f64 = 15.3e-6;
    /// Per-interval energy noise (J) from everything the model does not see.
    const NOISE: f64 = 1e-3;
    const LAYERS: [Layer; 3] = [
        Layer { len: 50e-6, watts: 20.0, weight: 0.5 },
        Layer { len: 200e-6, watts: 60.0, weight: 0.3 },
        Layer { len: 1e-3, watts: 35.0, weight: 0.2 },
    ];

    /// Two threads run spans of `layers` back to back with random gaps; the counter steps
    /// every ~1 ms (2% jitter) and reads cumulative energy in whole `UNIT`s, so the interval
    /// energies are differences of quantized readings, as from a real counter. Column 0 is the
    /// base, the interval's length minus the busy thread time (negative when both threads are
    /// busy at once); column 1 + l is layer l.
    fn simulate(seed: u64, n: usize, layers: &[Layer], noise: f64) -> Design {
        let mut rng = Rng(seed);
        let mut bounds = vec![0.0];
        for k in 0..n {
            bounds.push(bounds[k] + 1e-3 * (1.0 + 0.02 * rng.gauss()));
        }
        let p = layers.len() + 1;
        let mut x = vec![0.0; n * p];
        for k in 0..n {
            x[k * p] = bounds[k + 1] - bounds[k];
        }
        let total: f64 = layers.iter().map(|l| l.weight).sum();
        for _thread in 0..2 {
            let (mut t, mut k) = (0.0, 0);
            while t < bounds[n] {
                t -= 150e-6 * (1.0 - rng.uniform()).ln();
                let (mut pick, mut l) = (rng.uniform() * total, 0);
                while l + 1 < layers.len() && pick >= layers[l].weight {
                    pick -= layers[l].weight;
                    l += 1;
                }
                let end = t + layers[l].len * (0.8 + 0.4 * rng.uniform());
                while k < n && bounds[k + 1] <= t {
                    k += 1;
                }
                let mut i = k;
                while i < n && bounds[i] < end {
                    let overlap = end.min(bounds[i + 1]) - t.max(bounds[i]);
                    if overlap > 0.0 {
                        x[i * p + 1 + l] += overlap;
                        x[i * p] -= overlap;
                    }
                    i += 1;
                }
                t = end;
            }
        }
        let mut d = Design::new(p);
        let (mut energy, mut read) = (0.0, 0.0);
        for row in x.chunks(p) {
            let watts = layers.iter().map(|l| l.watts);
            energy += row.iter().zip(std::iter::once(BASE_W).chain(watts)).map(|(x, w)| x * w).sum::<f64>()
                + noise * rng.gauss();
            let now = (energy / UNIT).floor() * UNIT;
            let sparse: Vec<(usize, f64)> =
                row.iter().copied().enumerate().filter(|&(_, v)| v != 0.0).collect();
            d.add(now - read, &sparse);
            read = now;
        }
        d
    }

    fn truth(layers: &[Layer]) -> Vec<f64> {
        std::iter::once(BASE_W).chain(layers.iter().map(|l| l.watts)).collect()
    }

    fn no_nan(fit: &Fit) -> bool {
        fit.power.iter().chain(&fit.cov).chain([&fit.sigma2, &fit.dof]).all(|v| !v.is_nan())
    }

    /// Dense rows through `add`, with zeros left out as a caller would.
    fn design(rows: &[Vec<f64>], mut energy: impl FnMut(&[f64]) -> f64) -> Design {
        let mut d = Design::new(rows[0].len());
        for row in rows {
            let sparse: Vec<(usize, f64)> =
                row.iter().copied().enumerate().filter(|&(_, v)| v != 0.0).collect();
            d.add(energy(row), &sparse);
        }
        d
    }

    #[test]
    fn exact_recovery_across_scales() {
        // A 10 µs layer next to a 100 ms one, and a base that is often negative.
        let mut rng = Rng(7);
        let scales = [1e-5, 1e-4, 1e-3, 1e-1, 3e-2];
        let watts = [12.0, 3.0, 45.0, 80.0, 0.5, 22.0];
        let rows: Vec<Vec<f64>> = (0..500)
            .map(|_| {
                let busy: Vec<f64> = scales
                    .iter()
                    .map(|s| if rng.uniform() < 0.7 { s * rng.uniform() } else { 0.0 })
                    .collect();
                std::iter::once(0.05 - busy.iter().sum::<f64>()).chain(busy).collect()
            })
            .collect();
        assert!(rows.iter().any(|r| r[0] < 0.0));
        let d = design(&rows, |r| dot(r, &watts));
        let fit = solve(&d).unwrap();
        for (j, w) in watts.iter().enumerate() {
            assert!((fit.power[j] - w).abs() <= 1e-9 * w, "column {j}: {} vs {w}", fit.power[j]);
            assert!(!fit.merged(j) && !fit.clamped[j] && !fit.unseen[j]);
        }
        assert_eq!(fit.dof, 494.0);
    }

    #[test]
    fn realistic_within_three_standard_errors() {
        let fit = solve(&simulate(1, 4000, &LAYERS, NOISE)).unwrap();
        for (j, w) in truth(&LAYERS).into_iter().enumerate() {
            let (got, se) = (fit.power[j], fit.std_error(j));
            println!("column {j}: {got:.3} W ± {se:.3} (truth {w})");
            assert!((got - w).abs() <= 3.0 * se, "column {j}: {got} ± {se} vs {w}");
            assert!((got - w).abs() <= 0.05 * w, "column {j}: {got} vs {w}");
            assert!(se < 0.02 * w && !fit.merged(j) && !fit.clamped[j]);
        }
    }

    /// Moves interval `r`'s energy by `delta`, keeping the design's sums consistent.
    fn corrupt(d: &mut Design, r: usize, delta: f64) {
        let y = d.rows_y[r];
        d.yty += (y + delta).powi(2) - y * y;
        for &(j, x) in &d.entries[d.rows_at[r] as usize..d.rows_at[r + 1] as usize] {
            d.xty[j as usize] += f64::from(x) * delta;
        }
        d.rows_y[r] = y + delta;
    }

    /// Split over threads, the fit's passes give the fit of one pass: the same powers and,
    /// up to the order of its sums, the same covariance, outliers reweighted alike.
    #[test]
    fn a_fit_split_over_threads_is_the_fit_of_one_pass() {
        let mut d = simulate(7, 3000, &LAYERS, NOISE);
        // Runs of adjacent intervals, so that the covariance's clusters span several rows.
        for (r, f) in d.follows.iter_mut().enumerate() {
            *f = r % 50 != 0;
        }
        for r in (0..3000).step_by(97) {
            corrupt(&mut d, r, 0.05);
        }
        let solve_in = |parts| {
            FORCE_PARTS.with(|f| f.set(Some(parts)));
            let fit = solve(&d).unwrap();
            FORCE_PARTS.with(|f| f.set(None));
            fit
        };
        let one = solve_in(1);
        assert!(one.downweighted > 0, "the outliers were reweighted");
        for parts in [2, 3, 7] {
            let fit = solve_in(parts);
            assert_eq!(fit.power, one.power, "{parts} parts");
            assert_eq!(fit.downweighted, one.downweighted);
            for (a, b) in fit.cov.iter().zip(&one.cov) {
                assert!((a - b).abs() <= 1e-9 * a.abs().max(b.abs()), "{parts} parts: {a} vs {b}");
            }
        }
    }

    #[test]
    fn a_few_gross_errors_neither_move_nor_widen_the_fit() {
        let clean = solve(&simulate(3, 4000, &LAYERS, NOISE)).unwrap();
        let mut d = simulate(3, 4000, &LAYERS, NOISE);
        // Ten intervals where the 50 us layer ran are off by 30 times the noise: a step
        // stamped wrongly, a burst of background work.
        let hit: Vec<usize> = (0..d.n)
            .filter(|&r| {
                d.entries[d.rows_at[r] as usize..d.rows_at[r + 1] as usize].iter().any(|&(j, _)| j == 1)
            })
            .step_by(150)
            .take(10)
            .collect();
        assert_eq!(hit.len(), 10);
        for &r in &hit {
            corrupt(&mut d, r, 30.0 * NOISE);
        }
        let fit = solve(&d).unwrap();
        for (j, w) in truth(&LAYERS).into_iter().enumerate() {
            let (got, se) = (fit.power[j], fit.std_error(j));
            assert!((got - w).abs() <= 3.0 * se, "column {j}: {got} ± {se} vs {w}");
            assert!(
                (got - clean.power[j]).abs() <= 0.5 * clean.std_error(j),
                "column {j} moved: {got} vs {}",
                clean.power[j]
            );
            assert!(se <= 1.25 * clean.std_error(j), "column {j} widened: {se} vs {}", clean.std_error(j));
        }
    }

    #[test]
    fn confidence_intervals_cover() {
        // The 95% interval is power ± 1.96·se, the normal quantile: with ~4000 residual
        // degrees of freedom Student's t differs in the fourth digit.
        //
        // 1000 seeds, not 200: a calibrated estimator covers each column in Binomial(n, 0.95)
        // seeds, whose spread at n = 200 (±1.5%) puts one of five figures below 93% in about a
        // third of 200-seed blocks (measured over 20,000 seeds). At n = 1000 the spread is
        // ±0.7%, and 92.5% sits 3.6 of it below 95%. The standardized errors' RMS (1 when the
        // standard errors are right) is the sharper check: a 6% error in them fails it.
        let seeds = 1000;
        let truth = truth(&LAYERS);
        let c = [0.0, 1.0, 1.0, 1.0];
        let mut hits = [[0; 5]; 2];
        let mut z2 = 0.0;
        for seed in 0..seeds {
            let fit = solve(&simulate(seed, 4000, &LAYERS, NOISE)).unwrap();
            // Per column, then the three layers' total power: a sum, through the covariance.
            let sum: f64 = (1..4).map(|j| fit.power[j]).sum();
            let z = (0..4)
                .map(|j| (fit.power[j] - truth[j]) / fit.std_error(j))
                .chain([(sum - 115.0) / fit.variance(&c).sqrt()]);
            for (j, z) in z.enumerate() {
                z2 += if j < 4 { z * z } else { 0.0 };
                for (block, h) in hits.iter_mut().enumerate() {
                    h[j] += usize::from(z.abs() <= 1.96 && (block == 1 || seed < 200));
                }
            }
        }
        let rms = (z2 / (4 * seeds) as f64).sqrt();
        for (h, n) in hits.iter().zip([200, seeds]) {
            let pct: Vec<String> =
                h.iter().map(|&h| format!("{:.1}%", 100.0 * h as f64 / n as f64)).collect();
            println!("coverage over {n} seeds, columns 0-3 and sum of layers: {}", pct.join(" "));
        }
        println!("RMS standardized error over {seeds} seeds: {rms:.4}");
        assert!(hits[1].iter().all(|&h| h as f64 >= 0.925 * seeds as f64), "{:?}", hits[1]);
        assert!((0.94..=1.06).contains(&rms), "{rms}");
    }

    #[test]
    fn zero_power_is_clamped_not_negative() {
        let layers = [
            Layer { len: 50e-6, watts: 20.0, weight: 0.4 },
            Layer { len: 200e-6, watts: 60.0, weight: 0.2 },
            Layer { len: 1e-3, watts: 35.0, weight: 0.2 },
            Layer { len: 100e-6, watts: 0.0, weight: 0.2 },
        ];
        let truth = truth(&layers);
        let mut clamped = 0;
        for seed in 0..20 {
            let fit = solve(&simulate(seed, 4000, &layers, NOISE)).unwrap();
            assert!(fit.power[4] >= 0.0);
            if fit.clamped[4] {
                clamped += 1;
                assert_eq!(fit.power[4], 0.0);
                assert_eq!(fit.dof, 3996.0);
                // An honest, non-zero interval, uncorrelated with the rest.
                let se = fit.std_error(4);
                assert!(se > 0.0 && se < 1.0, "{se}");
                assert!((0..4).all(|j| fit.cov[4 * 5 + j] == 0.0));
            }
            for (j, w) in truth.iter().enumerate().take(4) {
                assert!(!fit.clamped[j]);
                assert!((fit.power[j] - w).abs() <= 4.0 * fit.std_error(j), "seed {seed} column {j}");
                assert!((fit.power[j] - w).abs() <= 0.05 * w);
            }
        }
        // Unconstrained, about half the seeds would estimate a negative power.
        assert!((4..=16).contains(&clamped), "{clamped} of 20 clamped");
    }

    #[test]
    fn nnls_matches_brute_force() {
        // Small random problems, where the best of all 2^m free sets can be enumerated: the
        // active-set path must reach it, including when a column taken in early has to leave.
        let mut rng = Rng(21);
        let (m, rows) = (5, 8);
        for _ in 0..300 {
            let x: Vec<f64> = (0..rows * m).map(|_| rng.gauss()).collect();
            let y: Vec<f64> = (0..rows).map(|_| rng.gauss()).collect();
            let x = &x;
            let col = |j: usize| (0..rows).map(move |r| x[r * m + j]);
            let c: Vec<f64> =
                (0..m * m).map(|ij| col(ij / m).zip(col(ij % m)).map(|(a, b)| a * b).sum()).collect();
            let b: Vec<f64> = (0..m).map(|j| col(j).zip(&y).map(|(a, b)| a * b).sum()).collect();
            let objective =
                |v: &[f64]| (0..m).map(|i| v[i] * (dot(&c[i * m..(i + 1) * m], v) - 2.0 * b[i])).sum::<f64>();
            let mut best = 0.0_f64;
            for set in 1..1usize << m {
                let idx: Vec<usize> = (0..m).filter(|&i| set >> i & 1 == 1).collect();
                let mut s: Vec<f64> = idx.iter().map(|&i| b[i]).collect();
                cholesky_solve(&cholesky(&principal(&c, m, &idx), idx.len()).unwrap(), idx.len(), &mut s);
                if s.iter().all(|&v| v >= 0.0) {
                    let mut v = vec![0.0; m];
                    idx.iter().zip(&s).for_each(|(&i, &s)| v[i] = s);
                    best = best.min(objective(&v));
                }
            }
            let (v, free) = nnls(&c, &b, m).unwrap();
            assert!(v.iter().all(|&v| v >= 0.0) && (0..m).all(|i| free[i] == (v[i] > 0.0)));
            assert!((objective(&v) - best).abs() <= 1e-9 * best.abs(), "{} vs {best}", objective(&v));
        }
    }

    /// Base, a, b, c: `b` is produced from `a` by `b_of_a`.
    fn collinear_rows(seed: u64, b_of_a: impl Fn(f64, &mut Rng) -> f64) -> Vec<Vec<f64>> {
        let mut rng = Rng(seed);
        (0..2000)
            .map(|_| {
                let a = 3e-4 * rng.uniform();
                let b = b_of_a(a, &mut rng);
                let c = 5e-4 * rng.uniform();
                vec![1e-3 - a - b - c, a, b, c]
            })
            .collect()
    }

    const COLLINEAR_W: [f64; 4] = [10.0, 20.0, 40.0, 30.0];

    #[test]
    fn proportional_columns_merge() {
        // A loop phase-locked to the counter: b is always 3·a. Their common power P fits
        // 20·a + 40·3a = P·(a + 3a), so P = 35.
        let rows = collinear_rows(3, |a, _| 3.0 * a);
        let fit = solve(&design(&rows, |r| dot(r, &COLLINEAR_W))).unwrap();
        assert!(fit.merged(1) && fit.merged(2) && !fit.merged(0) && !fit.merged(3));
        assert_eq!(fit.group, [0, 1, 1, 3]);
        assert_eq!(fit.power[1], fit.power[2]);
        assert!((fit.power[1] - 35.0).abs() < 1e-9 * 35.0, "{}", fit.power[1]);
        for (j, w) in [(0, 10.0), (3, 30.0)] {
            assert!((fit.power[j] - w).abs() < 1e-9 * w);
        }
        assert_eq!(fit.dof, 1997.0);
        assert!(no_nan(&fit) && fit.cov.iter().all(|v| v.is_finite()));
        assert_eq!(fit.cov[4 + 2], fit.cov[4 + 1]);

        // Proportional up to 0.1% jitter, with noise: still merged, with a finite, honest
        // interval around the common power.
        let mut rng = Rng(11);
        let rows = collinear_rows(4, |a, rng| 3.0 * a * (1.0 + 1e-3 * rng.gauss()));
        let fit = solve(&design(&rows, |r| dot(r, &COLLINEAR_W) + 1e-4 * rng.gauss())).unwrap();
        assert_eq!(fit.group, [0, 1, 1, 3]);
        let se = fit.std_error(1);
        assert!(
            se > 0.0 && se.is_finite() && (fit.power[1] - 35.0).abs() <= 4.0 * se,
            "{} ± {se}",
            fit.power[1]
        );
        // The group's variance applies to any split of its members' time.
        let v = fit.variance(&[0.0, 1.0, 3.0, 0.0]);
        assert!((v - 16.0 * se * se).abs() <= 1e-12 * v);
    }

    #[test]
    fn correlated_but_separable_columns_stay_apart() {
        // b follows a loosely (correlation ~0.8): 1/VIF far above the threshold.
        let rows = collinear_rows(5, |a, rng| a * (1.0 + 2.0 * rng.uniform()));
        let fit = solve(&design(&rows, |r| dot(r, &COLLINEAR_W))).unwrap();
        assert_eq!(fit.group, [0, 1, 2, 3]);
        for (j, w) in COLLINEAR_W.iter().enumerate() {
            assert!((fit.power[j] - w).abs() < 1e-9 * w);
        }
    }

    #[test]
    fn dependent_combination_is_resolved() {
        // c = a + b exactly: a rank-2 triple, which one merge makes separable. Any exact fit
        // gives a the coefficient P_a + P_c = 70 and b the coefficient P_b + P_c = 80.
        let mut rng = Rng(9);
        let rows: Vec<Vec<f64>> = (0..300)
            .map(|_| {
                let (a, b) = (4e-4 * rng.uniform(), 2e-4 * rng.uniform());
                vec![1e-3 - a - b, a, b, a + b]
            })
            .collect();
        let fit = solve(&design(&rows, |r| dot(r, &[10.0, 20.0, 30.0, 50.0]))).unwrap();
        assert_eq!((0..4).filter(|&j| fit.merged(j)).count(), 2);
        assert!((fit.power[1] + fit.power[3] - 70.0).abs() < 1e-9 * 70.0, "{:?}", fit.power);
        assert!((fit.power[2] + fit.power[3] - 80.0).abs() < 1e-9 * 80.0, "{:?}", fit.power);
        assert!((fit.power[0] - 10.0).abs() < 1e-9 * 10.0);
        assert!(no_nan(&fit) && fit.cov.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn random_rank_deficient_designs_solve() {
        // Six columns built from two to four sparse patterns with coefficients in -1..=3, so
        // columns repeat, cancel, or combine with signs as the base column can; about one
        // design in fifty needs a second merge after the first pass. Each must solve, with
        // non-negative finite powers and no NaN anywhere.
        let mut rng = Rng(5);
        let (p, n) = (6, 40);
        for _ in 0..1000 {
            let r = 2 + (rng.next() % 3) as usize;
            let basis: Vec<f64> =
                (0..r * n).map(|_| if rng.uniform() < 0.5 { rng.uniform() } else { 0.0 }).collect();
            let coef: Vec<f64> = (0..p * r)
                .map(|_| if rng.uniform() < 0.5 { (rng.next() % 5) as f64 - 1.0 } else { 0.0 })
                .collect();
            let rows: Vec<Vec<f64>> = (0..n)
                .map(|k| (0..p).map(|j| (0..r).map(|t| coef[j * r + t] * basis[t * n + k]).sum()).collect())
                .collect();
            let d = design(&rows, |_| rng.uniform());
            let seen = (0..p).any(|j| d.gram[j * p + j] > 0.0);
            let Some(fit) = solve(&d) else {
                assert!(!seen);
                continue;
            };
            assert!(no_nan(&fit) && fit.power.iter().all(|&w| w.is_finite() && w >= 0.0), "{fit:?}");
            assert!((0..p).all(|j| fit.group[fit.group[j]] == fit.group[j] && fit.group[j] <= j));
        }
    }

    #[test]
    fn variance_of_a_sum_uses_the_covariance() {
        let fit = solve(&simulate(2, 4000, &LAYERS, NOISE)).unwrap();
        let p = 4;
        let mut negative = 0;
        for a in 0..p {
            for b in (a + 1)..p {
                let mut c = [0.0; 4];
                (c[a], c[b]) = (1.0, 1.0);
                let (va, vb, cab) = (fit.cov[a * p + a], fit.cov[b * p + b], fit.cov[a * p + b]);
                assert_eq!(cab, fit.cov[b * p + a]);
                let v = fit.variance(&c);
                assert!((v - (va + vb + 2.0 * cab)).abs() <= 1e-12 * (va + vb), "{a},{b}");
                if cab < 0.0 {
                    negative += 1;
                    assert!(v < va + vb);
                }
            }
        }
        // Base time is what the layers leave: their estimates trade off against it.
        assert!(fit.cov[1] < 0.0 && negative > 0);
        // Scaling coefficients scales the variance by their square.
        let v = fit.variance(&[0.0, 2.0, 0.0, -3.0]);
        let w = 4.0 * fit.cov[5] + 9.0 * fit.cov[15] - 12.0 * fit.cov[7];
        assert!((v - w).abs() <= 1e-12 * v);
    }

    #[test]
    fn absorbed_halves_equal_the_whole() {
        // Dyadic values keep every sum exact, so the designs must be equal bit for bit.
        let mut rng = Rng(13);
        let (mut whole, mut first, mut second) = (Design::new(5), Design::new(5), Design::new(5));
        for i in 0..1000 {
            let mut row = Vec::new();
            for j in 0..5 {
                if rng.uniform() < 0.6 {
                    row.push((j, (rng.next() % 64) as f64 / 1024.0));
                }
            }
            let energy = (rng.next() % 4096) as f64 / 1024.0;
            whole.add(energy, &row);
            if i < 400 { &mut first } else { &mut second }.add(energy, &row);
        }
        whole.add(f64::NAN, &[(0, 1.0)]);
        second.add(1.0, &[(1, f64::INFINITY)]);
        first.absorb(&second);
        assert_eq!(first, whole);
        assert_eq!((first.intervals(), first.skipped()), (1000, 1));
        assert_eq!(solve(&first), solve(&whole));
    }

    #[test]
    fn repeated_column_counts_its_sum() {
        let (mut a, mut b) = (Design::new(3), Design::new(3));
        a.add(0.5, &[(0, 0.25), (2, 0.125), (0, 0.5)]);
        b.add(0.5, &[(2, 0.125), (0, 0.75)]);
        assert_eq!((&a.gram, &a.xty, a.yty), (&b.gram, &b.xty, b.yty));
    }

    #[test]
    fn rescaling_a_column_rescales_its_power() {
        // Seconds in microseconds instead: the power is per microsecond, the fit unchanged.
        let d = simulate(3, 4000, &LAYERS, NOISE);
        let mut scaled = Design::new(4);
        scaled.absorb(&d);
        let s = [1.0, 1e6, 1.0, 1.0];
        for i in 0..4 {
            scaled.xty[i] *= s[i];
            for j in 0..4 {
                scaled.gram[i * 4 + j] *= s[i] * s[j];
            }
        }
        for (j, x) in &mut scaled.entries {
            *x *= s[*j as usize] as f32;
        }
        let (f, g) = (solve(&d).unwrap(), solve(&scaled).unwrap());
        assert!((g.power[1] * 1e6 / f.power[1] - 1.0).abs() < 1e-9);
        assert!((g.std_error(1) * 1e6 / f.std_error(1) - 1.0).abs() < 1e-6);
        assert!((g.sigma2 / f.sigma2 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn degenerate_designs() {
        assert_eq!(solve(&Design::new(3)), None);
        assert_eq!(solve(&Design::new(0)), None);
        let mut only_energy = Design::new(2);
        only_energy.add(1.0, &[]);
        only_energy.add(1.0, &[(1, 0.0)]);
        assert_eq!(solve(&only_energy), None);

        // Column 2 never runs.
        let mut rng = Rng(17);
        let rows: Vec<Vec<f64>> = (0..50).map(|_| vec![1e-3, 5e-4 * rng.uniform(), 0.0]).collect();
        let fit = solve(&design(&rows, |r| 10.0 * r[0] + 40.0 * r[1] + 1e-5 * rng.gauss())).unwrap();
        assert_eq!(fit.unseen, [false, false, true]);
        assert_eq!((fit.power[2], fit.group[2], fit.merged(2), fit.clamped[2]), (0.0, 2, false, false));
        assert!(no_nan(&fit) && fit.cov[2 * 3..].iter().all(|&v| v == 0.0));
        assert_eq!(fit.variance(&[0.0, 0.0, 5.0]), 0.0);

        // As many intervals as free columns: no residual degrees of freedom.
        let mut exact = Design::new(2);
        exact.add(1.0, &[(0, 1.0)]);
        exact.add(2.0, &[(1, 1.0)]);
        assert_eq!(solve(&exact), None);
        exact.add(3.0, &[(0, 1.0), (1, 1.0)]);
        let fit = solve(&exact).unwrap();
        assert!(fit.sigma2 < 1e-20 && fit.dof == 1.0);

        // Energy that falls with every column's time: everything clamped, nothing free.
        let mut falling = Design::new(2);
        for i in 1..10 {
            falling.add(-(i as f64), &[(0, i as f64), (1, 0.5 * (i % 3) as f64)]);
        }
        let fit = solve(&falling).unwrap();
        assert_eq!(
            (fit.power.as_slice(), fit.clamped.as_slice(), fit.dof),
            ([0.0, 0.0].as_slice(), [true, true].as_slice(), 9.0)
        );
        assert!(no_nan(&fit) && fit.std_error(0) > 0.0);
    }
}
