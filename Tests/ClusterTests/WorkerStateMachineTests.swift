import StrataModel
import StrataWire
import StrataWorker
import Testing

/// The worker's protocol rules without sockets: who may say what, and when activations run.
@Suite struct WorkerStateMachineTests {
    let coordinator: [UInt8] = [1], stage: [UInt8] = [2], stranger: [UInt8] = [3], other: [UInt8] = [4]

    let assign = Assign(model: ModelIdentity(sha256: [UInt8](repeating: 7, count: 32), byteCount: 100, name: "m.gguf"),
                        layerStart: 0, layerEnd: 2, layerCount: 4, stageIndex: 0, stageCount: 2, contextLength: 64,
                        maxSequences: 4, activationType: .f32, nextEndpoint: "", tensorDigests: [])
    let batch = Activations(requestID: 9, lastRowsOnly: true, type: .f32, dim: 1, entries: [.init(sequence: 1, position: 0, tokenCount: 1)],
                            payload: [0, 0, 0, 0])

    func hello(_ role: Hello.Role) -> WireMessage { .hello(Hello(role: role, peerID: "p", appVersion: "test")) }

    /// The error code an action list answers `peer` with, if any.
    func error(_ actions: [WorkerStateMachine.Action], to peer: [UInt8]) -> WireErrorMessage? {
        for case let .send(.error(e), to) in actions where to == peer { return e }
        return nil
    }

    @Test func strangersAreRefusedAndNamed() {
        var m = WorkerStateMachine()
        let e = error(m.received(.forward(batch), from: stranger), to: stranger)
        #expect(e?.code == .unknownPeer && e?.requestID == 9 && e?.message.contains("hello") == true)
        #expect(error(m.received(.assign(assign), from: stranger), to: stranger)?.code == .unknownPeer)
        #expect(m.phase == .idle && m.coordinator == nil)
    }

    /// A previous stage may only pass on releases and activations.
    @Test func onlyTheCoordinatorControlsTheStage() {
        var m = WorkerStateMachine()
        #expect(m.received(hello(.stage), from: stage).isEmpty)
        for message in [WireMessage.assign(assign), .weightChunk(WeightChunk(offset: 0, totalBytes: 1, data: [0])), .shutdown] {
            #expect(error(m.received(message, from: stage), to: stage)?.code == .unknownPeer, "\(message.kind)")
        }
        let passed = Release([1], plan: 1, passOn: true)
        #expect(m.received(.release(passed), from: stage) == [.release(passed)])
        #expect(m.received(hello(.coordinator), from: coordinator).contains(.greet(coordinator)))
        #expect(m.received(.shutdown, from: coordinator).contains(.stop))
        #expect(m.received(.release(Release([1, 2])), from: coordinator) == [.release(Release([1, 2]))])
    }

    /// Activations run only once the stage is loaded; before that the coordinator hears why.
    @Test func activationsWaitForALoadedStage() {
        var m = WorkerStateMachine()
        _ = m.received(hello(.coordinator), from: coordinator)
        _ = m.received(hello(.stage), from: stage)
        #expect(error(m.received(.forward(batch), from: stage), to: coordinator) == nil)  // no coordinator has assigned yet
        #expect(m.received(.assign(assign), from: coordinator) == [.assign(assign)])
        #expect(m.coordinator == coordinator && m.phase == .loading)
        let early = error(m.received(.forward(batch), from: stage), to: coordinator)
        #expect(early?.code == .notAssigned && early?.requestID == 9)
        m.loaded()
        #expect(m.received(.forward(batch), from: stage) == [.run(batch)])
        // A new assignment stops activations until it is loaded.
        _ = m.received(.assign(assign), from: coordinator)
        #expect(error(m.received(.forward(batch), from: stage), to: coordinator)?.code == .notAssigned)
        m.assignmentFailed()
        #expect(m.phase == .idle)
    }

    /// The rows a previous stage sends to rebuild this stage's caches may come before this
    /// stage of the plan is loaded: they wait and run first once it is (and are dropped if the
    /// load fails). Other batches of a plan not loaded are refused as before.
    @Test func rebuildRowsWaitForTheirStage() {
        var m = WorkerStateMachine()
        _ = m.received(hello(.coordinator), from: coordinator)
        _ = m.received(hello(.stage), from: stage)
        var keeping = assign
        keeping.plan = 3
        keeping.keep = KeptCaches(fromPlan: 2, sequences: [.init(sequence: 1, length: 4)], rebuildStart: keeping.layerStart,
                                  rebuildEnd: keeping.layerEnd)
        var rows = batch
        rows.requestID = 3 << 32
        rows.rebuild = true
        _ = m.received(.assign(keeping), from: coordinator)
        #expect(m.received(.forward(rows), from: stage).isEmpty)
        var early = rows
        early.rebuild = false
        #expect(error(m.received(.forward(early), from: stage), to: coordinator)?.code == .notAssigned)
        #expect(m.loaded() == [.run(rows)])
        #expect(m.loaded().isEmpty)  // (run once)
        keeping.plan = 4
        _ = m.received(.assign(keeping), from: coordinator)
        rows.requestID = 4 << 32
        #expect(m.received(.forward(rows), from: stage).isEmpty)
        m.assignmentFailed()
        _ = m.received(.assign(keeping), from: coordinator)
        #expect(m.loaded().isEmpty)
    }

    /// Rebuild rows held before the stage is loaded are bounded by what the assignment keeps:
    /// rows past the kept positions are refused, and nothing of them is held.
    @Test func heldRebuildRowsAreBoundedByWhatIsKept() {
        var m = WorkerStateMachine()
        _ = m.received(hello(.coordinator), from: coordinator)
        _ = m.received(hello(.stage), from: stage)
        var keeping = assign
        keeping.plan = 3
        keeping.keep = KeptCaches(fromPlan: 2, sequences: [.init(sequence: 1, length: 3), .init(sequence: 2, length: 2)],
                                  rebuildStart: keeping.layerStart, rebuildEnd: keeping.layerEnd)
        _ = m.received(.assign(keeping), from: coordinator)
        func rows(_ sequence: UInt64, _ n: Int) -> Activations {
            Activations(requestID: 3 << 32, lastRowsOnly: false, rebuild: true, type: .f32, dim: 1,
                        entries: [.init(sequence: sequence, position: 0, tokenCount: UInt32(n))],
                        payload: ActivationCodec.encode([Float](repeating: 1, count: n), as: .f32))
        }
        #expect(m.received(.forward(rows(1, 3)), from: stage).isEmpty)
        let refused = error(m.received(.forward(rows(2, 3)), from: stage), to: coordinator)
        #expect(refused?.code == .malformed && refused?.message.contains("5 positions") == true, "\(String(describing: refused))")
        #expect(m.received(.forward(rows(2, 2)), from: stage).isEmpty)
        #expect(m.loaded() == [.run(rows(1, 3)), .run(rows(2, 2))])
    }

    /// After a re-plan, a batch sent under the old plan and still on its way is dropped: it must
    /// not touch the caches the new plan rebuilds. Batches of the new plan run.
    @Test func batchesOfAnotherPlanAreDropped() {
        var m = WorkerStateMachine()
        _ = m.received(hello(.coordinator), from: coordinator)
        _ = m.received(hello(.stage), from: stage)
        var second = assign
        second.plan = 2
        _ = m.received(.assign(second), from: coordinator)
        m.loaded()
        #expect(m.plan == 2)
        var old = batch
        old.requestID = 1 << 32 | 9
        var current = batch
        current.requestID = 2 << 32 | 10
        #expect(m.received(.forward(old), from: stage).isEmpty)
        #expect(m.received(.forward(current), from: stage) == [.run(current)])
    }

    /// A new plan loads beside the stage serving the last one: that stage keeps running its
    /// batches until the first batch of the new plan, which retires it.
    @Test func aNewPlanLoadsWhileTheLastOneServes() {
        var m = WorkerStateMachine()
        _ = m.received(hello(.coordinator), from: coordinator)
        _ = m.received(hello(.stage), from: stage)
        var first = assign, second = assign
        first.plan = 1
        second.plan = 2
        _ = m.received(.assign(first), from: coordinator)
        m.loaded()
        func batch(plan: UInt64, _ id: UInt64) -> Activations {
            var b = self.batch
            b.requestID = plan << 32 | id
            return b
        }
        _ = m.received(.assign(second), from: coordinator)
        #expect(m.phase == .loading)
        #expect(m.received(.forward(batch(plan: 1, 1)), from: stage) == [.run(batch(plan: 1, 1))])
        m.loaded()
        #expect(m.runnable == [1, 2])
        #expect(m.received(.forward(batch(plan: 1, 2)), from: stage) == [.run(batch(plan: 1, 2))])
        #expect(m.received(.forward(batch(plan: 2, 3)), from: stage) == [.retire(before: 2), .run(batch(plan: 2, 3))])
        #expect(m.runnable == [2])
        #expect(m.received(.forward(batch(plan: 1, 4)), from: stage).isEmpty)
    }

    /// Chunks of weights are taken only while receiving them, and only from the coordinator
    /// that assigned the stage.
    @Test func weightChunks() {
        var m = WorkerStateMachine()
        let chunk = WireMessage.weightChunk(WeightChunk(offset: 0, totalBytes: 4, data: [1, 2, 3, 4]))
        _ = m.received(hello(.coordinator), from: coordinator)
        _ = m.received(hello(.coordinator), from: other)
        _ = m.received(.assign(assign), from: coordinator)
        #expect(error(m.received(chunk, from: coordinator), to: coordinator)?.code == .notAssigned)
        m.receiving()
        guard case .storeChunk? = m.received(chunk, from: coordinator).first else { Issue.record("chunk not stored"); return }
        #expect(error(m.received(chunk, from: other), to: other)?.code == .notAssigned)
    }

    @Test func malformedInput() {
        var m = WorkerStateMachine()
        #expect(error(m.received([stranger, [1], [2]]), to: stranger)?.code == .malformed)
        #expect(error(m.received([stranger, [0xde, 0xad, 0xbe, 0xef]]), to: stranger) != nil)
        _ = m.received(hello(.coordinator), from: coordinator)
        #expect(error(m.received(.loadReport(LoadReport(status: .ready)), from: coordinator), to: coordinator)?.code == .malformed)
        // A well-formed hello in frames is taken like any message.
        #expect(m.received([stage, hello(.stage).encoded()]).isEmpty)
    }
}
