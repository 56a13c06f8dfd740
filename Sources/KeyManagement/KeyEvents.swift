import Journal

extension SystemActor {
    /// The journal event of a key operation by this actor (`key-admin`, purpose
    /// administration), bounded as the journal's columns are.
    func keyEvent(objectType: String, objectID: String, reason: String) -> AccessEvent {
        AccessEvent.system(by: self, action: .keyAdmin, objectType: objectType, objectID: objectID, reason: reason)
    }
}
