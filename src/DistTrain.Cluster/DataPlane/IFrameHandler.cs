// What a DataPlaneServer calls for each frame. All calls for one connection come from that
// connection's receive thread, in order; different connections call concurrently.
namespace DistTrain.Cluster.DataPlane;

public interface IFrameHandler
{
    /// <summary>
    /// Chooses where the payload of <paramref name="header"/> is received: set <paramref name="destination"/> to a span of
    /// exactly header.Length floats and return null, or return a reason to drop it (the bytes are then drained).
    /// The span is written before the checksum is verified: give a staging buffer, never live parameters.
    /// </summary>
    DropReason? Rent(FrameHeader header, out Span<float> destination);

    /// <summary>The payload arrived intact (length and checksum verified) in the span given by <see cref="Rent"/>.</summary>
    void OnFrame(in FrameHeader header, ReadOnlySpan<float> payload);

    /// <summary>A frame was dropped; a rented span (if any) holds garbage and may be reused.</summary>
    void OnDropped(in FrameHeader header, DropReason reason) { }

    /// <summary>A peer identified itself on a new connection (its Hello frame).</summary>
    void OnPeerConnected(int senderId) { }

    /// <summary>A connection of that peer ended (closed by either side or failed).</summary>
    void OnPeerDisconnected(int senderId) { }
}
