import Dispatch
import Foundation

/// Runs `body(i)` for every i in `0..<count` on its own thread, all at once, and waits for all.
/// `Cluster.generate` blocks its caller, so each concurrent stream needs a thread of its own
/// (Dispatch's `concurrentPerform` runs only as many at once as there are cores).
public func onSeparateThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for i in 0 ..< count {
        group.enter()
        Thread { body(i); group.leave() }.start()
    }
    group.wait()
}
