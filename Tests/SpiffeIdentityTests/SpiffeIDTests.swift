import Testing
@testable import SpiffeIdentity

@Suite struct SpiffeIDTests {
    @Test func validIDs() throws {
        let id = try SpiffeID(parsing: "spiffe://spike.ist/spike/keeper/instance-2")
        #expect(id.trustDomain == "spike.ist")
        #expect(id.path == "/spike/keeper/instance-2")
        #expect(id.description == "spiffe://spike.ist/spike/keeper/instance-2")
        #expect(try SpiffeID(parsing: "spiffe://a.b-c_d").path == "")
        #expect(try SpiffeID(parsing: "spiffe://td/Mixed.Case_path-1/x").path == "/Mixed.Case_path-1/x")
    }

    @Test(arguments: [
        ("", SpiffeIDError.empty),
        ("https://spike.ist/spike/nexus", .wrongScheme),
        ("SPIFFE://spike.ist/spike/nexus", .wrongScheme),
        ("spiffe://", .missingTrustDomain),
        ("spiffe:///spike/nexus", .missingTrustDomain),
        ("spiffe://spike.ist:8443/spike/nexus", .portNotAllowed),
        ("spiffe://user@spike.ist/spike/nexus", .userInfoNotAllowed),
        ("spiffe://spike.ist/spike/nexus?x=1", .queryNotAllowed),
        ("spiffe://spike.ist/spike/nexus#frag", .fragmentNotAllowed),
        ("spiffe://spike.ist/spike/ne%78us", .percentEncodingNotAllowed),
        ("spiffe://Spike.ist/spike/nexus", .upperCaseTrustDomain),
        ("spiffe://spike ist/x", .badTrustDomainCharacter),
        ("spiffe://spike.ist/spike/nex us", .badPathCharacter),
        ("spiffe://spike.ist//spike", .emptyPathSegment),
        ("spiffe://spike.ist/spike/nexus/", .emptyPathSegment),
        ("spiffe://spike.ist/spike/../nexus", .dotSegment),
        ("spiffe://spike.ist/./nexus", .dotSegment),
    ])
    func invalidIDs(text: String, expected: SpiffeIDError) {
        #expect(throws: expected) { try SpiffeID(parsing: text) }
    }

    @Test func lengthLimits() {
        let longDomain = String(repeating: "a", count: 256)
        #expect(throws: SpiffeIDError.trustDomainTooLong(256)) { try SpiffeID(parsing: "spiffe://\(longDomain)") }
        let longPath = "/" + String(repeating: "p", count: 2100)
        #expect(throws: SpiffeIDError.tooLong(18 + 2101)) { try SpiffeID(parsing: "spiffe://spike.ist\(longPath)") }
    }

    @Test func errorMessagesDoNotEchoInput() {
        do {
            _ = try SpiffeID(parsing: "spiffe://spike.ist/secret-looking?token=abc")
        } catch {
            #expect(!"\(error)".contains("token"))
        }
    }
}

@Suite struct RoleTests {
    let roots = TrustRoots()

    @Test func baseOrBasePlusSlash() throws {
        #expect(roots.id(try SpiffeID(parsing: "spiffe://spike.ist/spike/keeper"), hasRole: .keeper))
        #expect(roots.id(try SpiffeID(parsing: "spiffe://spike.ist/spike/keeper/instance-2"), hasRole: .keeper))
        #expect(!roots.id(try SpiffeID(parsing: "spiffe://spike.ist/spike/keeperX"), hasRole: .keeper))
        #expect(!roots.id(try SpiffeID(parsing: "spiffe://other.org/spike/keeper"), hasRole: .keeper))
        #expect(!roots.id(try SpiffeID(parsing: "spiffe://spike.ist/spike"), hasRole: .keeper))
        #expect(roots.id(try SpiffeID(parsing: "spiffe://spike.ist/spike/pilot/role/recover"), hasRole: .pilotRecover))
        #expect(!roots.id(try SpiffeID(parsing: "spiffe://spike.ist/spike/pilot/role/recover"), hasRole: .pilotRestore))
        #expect(roots.roles(of: try SpiffeID(parsing: "spiffe://spike.ist/spike/nexus")) == [.nexus])
    }

    @Test func trustRootListsFromEnvironment() throws {
        let roots = try TrustRoots.fromEnvironment(["SPIKE_TRUST_ROOT_KEEPER": " spike.ist , corp.example ", "SPIKE_TRUST_ROOT_NEXUS": ""])
        #expect(roots.roots(for: .keeper) == ["spike.ist", "corp.example"])
        #expect(roots.roots(for: .nexus) == ["spike.ist"])
        #expect(roots.id(try SpiffeID(parsing: "spiffe://corp.example/spike/keeper/7"), hasRole: .keeper))
        #expect(!roots.id(try SpiffeID(parsing: "spiffe://corp.example/spike/nexus"), hasRole: .nexus))
    }

    @Test func badTrustRootNamesTheVariable() {
        do {
            _ = try TrustRoots.fromEnvironment(["SPIKE_TRUST_ROOT_PILOT": "spike.ist,Bad Domain"])
            Issue.record("expected an error")
        } catch {
            #expect(error.setting == "SPIKE_TRUST_ROOT_PILOT")
            #expect("\(error)".hasPrefix("SPIKE_TRUST_ROOT_PILOT: entry"))
        }
    }
}
