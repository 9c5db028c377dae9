package org.apache.cassandra.tools;

/** LoaderOptions.builder() returns a package-private type: this class, in its package,
 *  parses sstableloader's own options in the process (a password never reaches a command
 *  line) and gives the built options back. */
public final class FuretLoaderOptions {
    private FuretLoaderOptions() {}

    public static LoaderOptions parse(String[] args) {
        return LoaderOptions.builder().parseArgs(args).build();
    }
}
