/// Results of tools/rejection-search.c, recorded so the ~2^32-hash search runs once.
/// Each hit of the chain at step k gives two keys: B(k−1), whose first draw
/// B(k) is >= n, and B(k−2), whose second draw is. Vectors/reference/README.md
/// lists the labels and steps.
enum RejectionSearchResults {
    static let keys: [(name: String, hex: String)] = [
        // label spike-recovery-rejection-search-a, step 5182729555,
        // rejected block ffffffff09dc0c1623a252bd56d39e192b4b36f3c433479dc0591e27b89bd1d2
        ("first-draw-a", "813b38e3d3f0d066c0671f26e552b81fc8ff0443cf173613a2d5c0842c8fb087"),
        ("second-draw-a", "53ab381013a5bda65ef8d7e1134146242a0fcfcee4f1038c23afcc782d20cbf8"),
        // label spike-recovery-rejection-search-b, step 1798576628,
        // rejected block ffffffffff51a46d10e3408cdacd01a267540b0b1faaa27f565fae76ebd63286
        ("first-draw-b", "be88a18a901c696faf6ba3e54b136f53dc6a52065368931d2c1b12424d49553f"),
        ("second-draw-b", "b63df75679fd08d417a4a3d4de3c3af2e6cee84aec15f567a5e693f084fc112e"),
    ]
}
