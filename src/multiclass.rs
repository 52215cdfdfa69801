//! Row-wise losses over a class axis: cross-entropy, NLL, multi-margin and multilabel soft-margin.
