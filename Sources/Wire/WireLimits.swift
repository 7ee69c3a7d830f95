extension Wire {
    /// The limits the decoder enforces, one place for both the codec and its callers (a worker
    /// can check its `--name` against ``peerIDBytes`` before it ever sends a hello).
    ///
    /// They bound what a hostile or broken peer can make the decoder allocate: every length and
    /// count is checked against its limit and against the bytes left before anything is built.
    public enum Limits {
        /// `Hello.peerID`, bytes of UTF-8.
        public static let peerIDBytes = 256
        /// `Hello.appVersion`, bytes of UTF-8.
        public static let appVersionBytes = 64
        /// `Hello.cpuFeatures`: entries, and bytes of each.
        public static let cpuFeatures = 64
        public static let cpuFeatureBytes = 32
        /// `Hello.models`.
        public static let models = 64
        /// `ModelIdentity.name`, bytes of UTF-8.
        public static let modelNameBytes = 256
        /// `Assign.nextEndpoint`, bytes of UTF-8.
        public static let endpointBytes = 256
        /// A CurveZMQ public key is exactly this long (or absent).
        public static let curveKeyBytes = 32
        /// A SHA-256 digest is exactly this long.
        public static let sha256Bytes = 32
        /// `Assign.tensorDigests`: a stage's tensors (nine per layer in a Llama model).
        public static let tensorDigests = 8192
        /// `TensorDigest.name`, bytes of UTF-8.
        public static let tensorNameBytes = 256
        /// `Activations.entries`.
        public static let entries = 4096
        /// Sum of `Activations.Entry.tokenCount`: rows in one batch.
        public static let rows = 65536
        /// `Activations.dim`, values per row (at least 1).
        public static let dim = 65536
        /// `Activations.stageNanos`: one per pipeline stage.
        public static let stages = 256
        /// Sequences in one `.release`.
        public static let releaseSequences = 4096
        /// `WeightChunk.data`.
        public static let chunkBytes = 16 << 20
        /// `WireErrorMessage.message`, bytes of UTF-8.
        public static let errorMessageBytes = 4096
    }
}
