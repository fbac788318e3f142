//! Annotator agreement for one feature: executions are the raters, the feature's label
//! column holds the category. Over the targets with at least two ratings: mean pairwise
//! percent agreement, Fleiss' kappa, and the matrix of which labels meet on one target.

use std::collections::BTreeMap;

use serde::Serialize;

/// Agreement among the executions that labelled the same targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    /// Targets (with their qualifier values) rated by at least two executions.
    pub targets: usize,
    /// Ratings of those targets (one per execution and target).
    pub ratings: usize,
    /// Distinct executions that labelled any target with this feature.
    pub raters: usize,
    /// Mean over targets of the share of rating pairs that agree (Fleiss' P̄), in 0..=1;
    /// `None` without any target rated twice.
    pub percent_agreement: Option<f64>,
    /// Fleiss' kappa, `(P̄ − P̄e) / (1 − P̄e)`; `None` without targets rated twice or when
    /// every rating is one label (chance agreement is 1 and kappa undefined).
    pub fleiss_kappa: Option<f64>,
    /// The labels of the matrix, sorted.
    pub labels: Vec<String>,
    /// `matrix[i][j]`: ordered pairs of two different ratings of one target with labels
    /// `labels[i]` and `labels[j]` (symmetric; the diagonal counts agreeing pairs).
    pub matrix: Vec<Vec<u64>>,
}

/// Computes [`Agreement`] from each target's ratings (label per rating). Targets with fewer
/// than two ratings are ignored.
pub(crate) fn agreement(targets: &[Vec<String>], raters: usize) -> Agreement {
    let rated: Vec<&Vec<String>> = targets.iter().filter(|r| r.len() >= 2).collect();
    let mut labels: Vec<String> = rated.iter().flat_map(|r| r.iter().cloned()).collect();
    labels.sort();
    labels.dedup();
    let position: BTreeMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let mut table = Vec::with_capacity(rated.len());
    let mut matrix = vec![vec![0u64; labels.len()]; labels.len()];
    for ratings in &rated {
        let mut counts = vec![0u64; labels.len()];
        for label in ratings.iter() {
            counts[position[label.as_str()]] += 1;
        }
        // Ordered pairs of distinct ratings: n_a · n_b off the diagonal, n_a · (n_a − 1) on it.
        for (a, &na) in counts.iter().enumerate() {
            for (b, &nb) in counts.iter().enumerate() {
                matrix[a][b] += if a == b {
                    na * na.saturating_sub(1)
                } else {
                    na * nb
                };
            }
        }
        table.push(counts);
    }
    Agreement {
        targets: rated.len(),
        ratings: rated.iter().map(|r| r.len()).sum(),
        raters,
        percent_agreement: percent_agreement(&table),
        fleiss_kappa: fleiss_kappa(&table),
        labels,
        matrix,
    }
}

/// Per target `i` with `n_i` ratings, `P_i = Σ_j n_ij (n_ij − 1) / (n_i (n_i − 1))`: the share
/// of ordered rating pairs that agree.
fn target_agreement(counts: &[u64]) -> Option<f64> {
    let n: u64 = counts.iter().sum();
    (n >= 2).then(|| {
        let agreeing: u64 = counts.iter().map(|&c| c * c.saturating_sub(1)).sum();
        agreeing as f64 / (n * (n - 1)) as f64
    })
}

/// Fleiss' P̄: the mean of [`target_agreement`] over the rows of a targets × labels count
/// table (rows with fewer than two ratings are skipped).
pub(crate) fn percent_agreement(table: &[Vec<u64>]) -> Option<f64> {
    let shares: Vec<f64> = table.iter().filter_map(|c| target_agreement(c)).collect();
    (!shares.is_empty()).then(|| shares.iter().sum::<f64>() / shares.len() as f64)
}

/// Fleiss' kappa of a targets × labels count table. Targets may have different numbers of
/// ratings (raters differ from target to target, as executions do): each target's agreement
/// is its own `P_i`, and the label shares `p_j` are taken over all ratings, the usual
/// generalization of Fleiss (1971), which it equals when every target has the same count.
pub(crate) fn fleiss_kappa(table: &[Vec<u64>]) -> Option<f64> {
    let rows: Vec<&Vec<u64>> = table
        .iter()
        .filter(|c| c.iter().sum::<u64>() >= 2)
        .collect();
    let observed = percent_agreement(table)?;
    let width = rows.iter().map(|r| r.len()).max()?;
    let mut per_label = vec![0u64; width];
    for row in &rows {
        for (j, &c) in row.iter().enumerate() {
            per_label[j] += c;
        }
    }
    let total: u64 = per_label.iter().sum();
    let chance: f64 = per_label
        .iter()
        .map(|&c| (c as f64 / total as f64).powi(2))
        .sum();
    // All ratings in one label: chance agreement is 1 and kappa is 0/0.
    ((1.0 - chance).abs() > f64::EPSILON).then(|| (observed - chance) / (1.0 - chance))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) {
        let a = a.unwrap();
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    /// By hand: four targets, three raters, labels A and B.
    ///
    /// | target | A | B | P_i = Σ n(n−1) / (3·2) |
    /// |---|---|---|---|
    /// | t1 | 3 | 0 | 6/6 = 1   |
    /// | t2 | 2 | 1 | 2/6 = 1/3 |
    /// | t3 | 0 | 3 | 6/6 = 1   |
    /// | t4 | 1 | 2 | 2/6 = 1/3 |
    ///
    /// P̄ = (1 + 1/3 + 1 + 1/3) / 4 = 2/3. p_A = 6/12 = 1/2, p_B = 1/2, P̄e = 1/4 + 1/4 = 1/2.
    /// κ = (2/3 − 1/2) / (1 − 1/2) = (1/6) / (1/2) = 1/3.
    #[test]
    fn fleiss_kappa_matches_a_hand_computed_table() {
        let table = vec![vec![3, 0], vec![2, 1], vec![0, 3], vec![1, 2]];
        close(percent_agreement(&table), 2.0 / 3.0);
        close(fleiss_kappa(&table), 1.0 / 3.0);
    }

    /// The worked example of Fleiss' kappa on Wikipedia: 10 targets, 14 raters, 5 labels,
    /// P̄ = 0.378, P̄e = 0.213, κ = 0.210.
    #[test]
    fn fleiss_kappa_matches_the_textbook_fourteen_rater_example() {
        let table = vec![
            vec![0, 0, 0, 0, 14],
            vec![0, 2, 6, 4, 2],
            vec![0, 0, 3, 5, 6],
            vec![0, 3, 9, 2, 0],
            vec![2, 2, 8, 1, 1],
            vec![7, 7, 0, 0, 0],
            vec![3, 2, 6, 3, 0],
            vec![2, 5, 3, 2, 2],
            vec![6, 5, 2, 1, 0],
            vec![0, 2, 2, 3, 7],
        ];
        let observed = percent_agreement(&table).unwrap();
        assert!((observed - 0.378).abs() < 0.0005, "{observed}");
        let kappa = fleiss_kappa(&table).unwrap();
        assert!((kappa - 0.210).abs() < 0.0005, "{kappa}");
    }

    #[test]
    fn kappa_is_undefined_when_every_rating_is_one_label() {
        let table = vec![vec![2, 0], vec![3, 0]];
        close(percent_agreement(&table), 1.0);
        assert_eq!(fleiss_kappa(&table), None);
        assert_eq!(fleiss_kappa(&[vec![1, 0]]), None);
    }

    #[test]
    fn agreement_counts_ordered_pairs_in_the_confusion_matrix() {
        let r = |labels: &[&str]| labels.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // The small fixture bag's Glaucoma ratings: I001 and I003 disagree, I005 is 2:1, and
        // I002 / I006 have one rating each (ignored).
        let targets = vec![
            r(&["Normal", "Severe"]),
            r(&["Mild"]),
            r(&["Normal", "Moderate"]),
            r(&["Mild", "Severe", "Mild"]),
            r(&["Normal"]),
        ];
        let a = agreement(&targets, 3);
        assert_eq!(a.targets, 3);
        assert_eq!(a.ratings, 7);
        assert_eq!(a.labels, ["Mild", "Moderate", "Normal", "Severe"]);
        assert_eq!(
            a.matrix,
            vec![
                vec![2, 0, 0, 2],
                vec![0, 0, 1, 0],
                vec![0, 1, 0, 1],
                vec![2, 0, 1, 0],
            ]
        );
        // P̄ = (0 + 0 + 1/3) / 3 = 1/9; p = (2, 1, 2, 2) / 7, P̄e = 13/49;
        // κ = (1/9 − 13/49) / (36/49) = −17/81.
        close(a.percent_agreement, 1.0 / 9.0);
        close(a.fleiss_kappa, -17.0 / 81.0);
    }
}
