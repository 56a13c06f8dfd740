import Mustache

// The rows pages repeat by the dozen (a search's entries, the register's requests,
// the choices of a list, the header's links) answer Mustache's lookups themselves,
// without reflection: on a page of 50 search results, converting and looking up
// their fields through `Mirror` was most of osmose-console's CPU (perf, 2026-12-05).
// Each answers exactly its stored properties (RenderingTests compares every one
// with what `Mirror` finds), so the pages render the same.

extension Console.EntryRowModel: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "sequence": sequence
        case "occurred": occurred
        case "user": user
        case "role": role
        case "team": team
        case "action": action
        case "object": object
        case "patient": patient
        case "purpose": purpose
        case "result": result
        case "denied": denied
        default: nil
        }
    }
}

extension Console.RegisterRow: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "number": number
        case "kind": kind
        case "capacity": capacity
        case "received": received
        case "status": status
        case "due": due
        case "left": left
        case "overdue": overdue
        case "soon": soon
        case "identityChecked": identityChecked
        default: nil
        }
    }
}

extension Console.Choice: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "value": value
        case "label": label
        case "selected": selected
        default: nil
        }
    }
}

extension Console.PageLink: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "href": href
        case "label": label
        case "rel": rel
        default: nil
        }
    }
}

extension Console.PageButton: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "page": page
        case "label": label
        default: nil
        }
    }
}

extension UserPanel.Link: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "href": href
        case "label": label
        default: nil
        }
    }
}
