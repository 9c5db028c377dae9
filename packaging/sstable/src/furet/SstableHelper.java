package furet;

import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.cassandra.io.sstable.CQLSSTableWriter;
import org.apache.cassandra.tools.BulkLoader;
import org.apache.cassandra.tools.FuretLoaderOptions;

/**
 * furet's SSTable helper: rows furet already serialised (the driver's bound values) on
 * stdin become SSTables (Cassandra's CQLSSTableWriter), streamed to the ring by
 * sstableloader's code (BulkLoader) when furet asks. One process per round worker.
 *
 * Frames on stdin, big-endian (furet: migration/engine/sstable_helper.py, the same
 * contract):
 *   'T' u8 table, str keyspace, str table, str CREATE TABLE, str INSERT ... USING TIMESTAMP ?
 *   'R' u8 table, i64 ref, u16 n, n x (i32 length or -1 for null, bytes)
 *   'F' close the writers: the segment's SSTables are complete in <root>/<segment>/<ks>/<table>
 *   'L' str directory, u16 n, n x str: sstableloader's options for that directory
 *   'Q' quit
 * str is u32 length + UTF-8. Answers on stdout, one line each:
 *   after 'F': "refused <table> <ref> <reason>" per row the writer refused, then
 *              "flushed <rows> <segment directory>"
 *   after 'L': "loaded" or "failed <reason>"
 * Nothing else is written to stdout (logging goes to stderr).
 */
public final class SstableHelper {
    private static final class Table {
        final String keyspace, name, schema, insert;
        CQLSSTableWriter writer;

        Table(String keyspace, String name, String schema, String insert) {
            this.keyspace = keyspace;
            this.name = name;
            this.schema = schema;
            this.insert = insert;
        }
    }

    // 1 MiB: the smallest size CQLSSTableWriter takes; the budget then holds for up to 32
    // query tables fed from one source table (beyond, 1 MiB each).
    private static final int MIN_TABLE_BUFFER_MIB = 1;
    private final Path root;
    private final int bufferMiB;   // the buffer budget, shared by the tables
    private final Map<Integer, Table> tables = new HashMap<>();
    private final List<String> refused = new ArrayList<>();
    private final PrintStream out;
    private int segment = 0;
    private long rows = 0;

    private SstableHelper(Path root, int bufferMiB, PrintStream out) {
        this.root = root;
        this.bufferMiB = bufferMiB;
        this.out = out;
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: SstableHelper <directory> [buffer budget MiB]");
            System.exit(2);
        }
        PrintStream stdout = new PrintStream(new BufferedOutputStream(System.out), false,
                                             StandardCharsets.UTF_8);
        System.setOut(System.err);  // whatever the libraries print stays off the answers
        SstableHelper helper = new SstableHelper(
            Path.of(args[0]), args.length > 1 ? Integer.parseInt(args[1]) : 32, stdout);
        helper.run(new DataInputStream(new java.io.BufferedInputStream(System.in, 1 << 20)));
        System.exit(0);
    }

    private static String str(DataInputStream in) throws IOException {
        int n = in.readInt();
        byte[] b = new byte[n];
        in.readFully(b);
        return new String(b, StandardCharsets.UTF_8);
    }

    private static String oneLine(Throwable e) {
        String m = e.getMessage() == null ? e.getClass().getSimpleName()
                                          : e.getClass().getSimpleName() + ": " + e.getMessage();
        return m.replace('\n', ' ').replace('\r', ' ');
    }

    private Path segmentDir() {
        return root.resolve(String.format("segment-%06d", segment));
    }

    private void run(DataInputStream in) throws Exception {
        while (true) {
            int tag;
            try {
                tag = in.readUnsignedByte();
            } catch (EOFException e) {
                return;
            }
            switch (tag) {
                case 'T': {
                    int id = in.readUnsignedByte();
                    tables.put(id, new Table(str(in), str(in), str(in), str(in)));
                    break;
                }
                case 'R': {
                    Table t = tables.get(in.readUnsignedByte());
                    long ref = in.readLong();
                    int n = in.readUnsignedShort();
                    ByteBuffer[] values = new ByteBuffer[n];
                    for (int i = 0; i < n; i++) {
                        int len = in.readInt();
                        if (len >= 0) {
                            byte[] b = new byte[len];
                            in.readFully(b);
                            values[i] = ByteBuffer.wrap(b);
                        }
                    }
                    try {
                        writer(t).rawAddRow(values);
                        rows++;
                    } catch (Exception e) {
                        refused.add("refused " + t.name + " " + ref + " " + oneLine(e));
                    }
                    break;
                }
                case 'F': {
                    Path dir = segmentDir();
                    for (Table t : tables.values()) {
                        if (t.writer != null) {
                            t.writer.close();
                            t.writer = null;
                        }
                    }
                    for (String line : refused)
                        out.println(line);
                    refused.clear();
                    out.println("flushed " + rows + " " + dir);
                    out.flush();
                    rows = 0;
                    segment++;
                    break;
                }
                case 'L': {
                    String dir = str(in);
                    int n = in.readUnsignedShort();
                    String[] options = new String[n + 1];
                    for (int i = 0; i < n; i++)
                        options[i] = str(in);
                    options[n] = dir;
                    try {
                        BulkLoader.load(FuretLoaderOptions.parse(options));
                        out.println("loaded");
                    } catch (Throwable e) {
                        Throwable cause = e;
                        while (cause.getCause() != null && cause.getCause() != cause)
                            cause = cause.getCause();
                        out.println("failed " + oneLine(e)
                                    + (cause != e ? " (" + oneLine(cause) + ")" : ""));
                    }
                    out.flush();
                    break;
                }
                case 'Q':
                    return;
                default:
                    throw new IOException("unknown frame " + tag);
            }
        }
    }

    /**
     * Each table's share of the buffer budget: an unsorted writer holds up to its buffer
     * (serialised size) of rows on the heap, and as much again while its disk thread writes
     * the previous one, so the heap a helper needs does not grow with the number of tables
     * it writes (jvm.options sizes the heap for the budget).
     */
    private int tableBufferMiB() {
        return Math.max(MIN_TABLE_BUFFER_MIB, bufferMiB / Math.max(1, tables.size()));
    }

    private CQLSSTableWriter writer(Table t) throws IOException {
        if (t.writer == null) {
            Path dir = segmentDir().resolve(t.keyspace).resolve(t.name);
            Files.createDirectories(dir);
            t.writer = CQLSSTableWriter.builder().inDirectory(dir.toString()).forTable(t.schema)
                .using(t.insert).withMaxSSTableSizeInMiB(tableBufferMiB()).build();
        }
        return t.writer;
    }
}
