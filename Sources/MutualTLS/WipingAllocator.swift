import CSecureMemory
@_spi(CustomByteBufferAllocator) import NIOCore

/// A ByteBufferAllocator whose blocks are zeroed when freed or moved. Set on
/// every channel that carries shards, keys or SVID keys in plaintext (the
/// mTLS server's connections, the client's, the Workload API's), so NIO's
/// receive buffers, NIOSSL's plaintext buffer, the HTTP decoder's and the
/// ones this code writes responses into are wiped once done with, without
/// this code having to own them. BoringSSL wipes its own record buffers
/// when it frees them.
public enum WipingAllocator {
    public static let shared = ByteBufferAllocator(
        allocate: csm_buffer_allocate, reallocate: csm_buffer_reallocate,
        deallocate: csm_buffer_deallocate, copy: csm_buffer_copy)
}
