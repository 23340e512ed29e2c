package io.blip2stream.archviolation.a;

import io.blip2stream.archviolation.b.Downstream;

/** A deliberate violation for ArchitectureTest: a package that depends on one that depends back on it. */
public class Upstream {
    Downstream next;
}
