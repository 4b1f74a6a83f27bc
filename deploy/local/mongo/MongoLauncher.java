import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.QueryResult;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.bson.BinData;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.MongoServerError;
import de.bwaldvogel.mongo.wire.message.MongoQuery;
import io.netty.channel.Channel;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import javax.crypto.Mac;
import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * Runs a MongoDB wire-protocol server backed by an H2 MVStore file.
 *
 * Usage: MongoLauncher HOST PORT DATA_FILE
 *
 * The backend is committed on a short timer by H2 and once more on SIGTERM, so a clean stop
 * keeps every write and a hard kill loses at most the last second.
 *
 * When MONGO_LAUNCHER_USERS_FILE names a file (mode 0600, lines "user:password", blank lines
 * and # comments ignored), every connection must log in with SCRAM-SHA-256 against the admin
 * database before it may run anything but the handshake; mongo-java-server has no
 * authentication of its own. Unset, the server is open as before.
 */
public final class MongoLauncher {
    /**
     * The server's own version list stops at wire version 8, which current PyMongo refuses
     * (it needs MongoDB 4.4, wire version 9); the commands we use behave the same either way.
     */
    private static final MongoVersion REPORTED_VERSION = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(4, 4, 0);
        }

        @Override
        public int getWireVersion() {
            return 9;
        }
    };

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: MongoLauncher HOST PORT DATA_FILE");
            System.exit(2);
        }
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        Path dataFile = Path.of(args[2]).toAbsolutePath();
        Files.createDirectories(dataFile.getParent());

        String usersFile = System.getenv("MONGO_LAUNCHER_USERS_FILE");
        H2Backend backend;
        if (usersFile == null || usersFile.isEmpty()) {
            backend = new H2Backend(dataFile.toString());
        } else {
            Map<String, Scram.Credential> users;
            try {
                users = Scram.loadUsers(Path.of(usersFile));
            } catch (IllegalArgumentException | java.io.IOException e) {
                // Fail closed: a broken users file must not leave an open server behind.
                System.err.println("MONGO_LAUNCHER_USERS_FILE: " + e.getMessage());
                System.exit(2);
                return;
            }
            backend = new AuthenticatingBackend(dataFile.toString(), users);
            System.out.println("SCRAM-SHA-256 authentication required, " + users.size()
                    + " user(s) from " + usersFile);
        }
        backend.version(REPORTED_VERSION);
        MongoServer server = new MongoServer(backend);
        server.bind(host, port);
        System.out.println("mongo wire server listening on " + host + ":" + port + ", data in " + dataFile);

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdown();
            stopped.countDown();
        }));
        stopped.await();
    }

    /**
     * Gates every command on a per-connection login. Both OP_MSG and OP_QUERY commands reach
     * handleCommand, so that is the one hook (only a legacy OP_QUERY "ping" or "serverStatus"
     * is answered before it, by the server's own handler). Refusals are returned as error documents rather
     * than thrown, because the server logs thrown errors with the whole command (SCRAM
     * payloads included) at error level.
     */
    static final class AuthenticatingBackend extends H2Backend {
        /** What MongoDB lets a connection do before it has authenticated (lower case). */
        private static final Set<String> OPEN_COMMANDS = Set.of(
                "hello", "ismaster", "ping", "buildinfo", "saslstart", "saslcontinue", "endsessions");

        private final Map<String, Scram.Credential> users;
        private final Map<Channel, Scram.Session> sessions = new ConcurrentHashMap<>();

        AuthenticatingBackend(String dataFile, Map<String, Scram.Credential> users) {
            super(dataFile);
            this.users = users;
        }

        @Override
        public Document handleCommand(Channel channel, String database, String command, Document query) {
            Scram.Session session = sessions.computeIfAbsent(channel, c -> new Scram.Session());
            String name = command.toLowerCase(Locale.ROOT);
            try {
                switch (name) {
                    case "saslstart":
                        return ok(session.start(users, database, query));
                    case "saslcontinue":
                        return ok(session.next(query));
                    default:
                        break;
                }
            } catch (MongoServerError e) {
                return error(e);
            }
            if (!session.authenticated() && !OPEN_COMMANDS.contains(name)) {
                return error(unauthorized(command));
            }
            Document reply = super.handleCommand(channel, database, command, query);
            if (name.equals("hello") || name.equals("ismaster")) {
                addAuthToHandshake(session, query, reply);
            }
            return reply;
        }

        /**
         * Legacy OP_QUERY reads of a collection (no current driver sends them) skip
         * handleCommand; the server answers this throw by closing the connection.
         */
        @Override
        public QueryResult handleQuery(MongoQuery query) {
            Scram.Session session = sessions.get(query.getChannel());
            if (session == null || !session.authenticated()) {
                throw unauthorized("find");
            }
            return super.handleQuery(query);
        }

        @Override
        public void handleClose(Channel channel) {
            sessions.remove(channel);
            super.handleClose(channel);
        }

        /**
         * Drivers ask the handshake which mechanisms a user has ("saslSupportedMechs":
         * "db.user") and may piggyback the saslStart on it ("speculativeAuthenticate"), which
         * saves a round trip. Every admin user is told SCRAM-SHA-256, known or not, so the
         * handshake does not reveal which users exist. A failed speculative start is left out of
         * the reply, as MongoDB does, and the driver retries with a plain saslStart.
         */
        private void addAuthToHandshake(Scram.Session session, Document query, Document reply) {
            if (query.get("saslSupportedMechs") instanceof String user && user.startsWith("admin.")) {
                reply.put("saslSupportedMechs", List.of(Scram.MECHANISM));
            }
            if (query.get("speculativeAuthenticate") instanceof Document start
                    && start.containsKey("saslStart")) {
                try {
                    reply.put("speculativeAuthenticate", session.start(users, String.valueOf(start.get("db")), start));
                } catch (MongoServerError e) {
                    // no speculativeAuthenticate in the reply: the driver falls back to saslStart
                }
            }
        }

        private static MongoServerError unauthorized(String command) {
            return new MongoServerError(13, "Unauthorized", "command " + command + " requires authentication");
        }

        private static Document ok(Document reply) {
            return reply.append("ok", 1.0);
        }

        private static Document error(MongoServerError e) {
            return new Document("ok", 0.0)
                    .append("errmsg", e.getMessageWithoutErrorCode())
                    .append("code", e.getCode())
                    .append("codeName", e.getCodeName());
        }
    }

    /** Server side of SCRAM-SHA-256 (RFC 5802, with SHA-256 per RFC 7677) as MongoDB frames it. */
    static final class Scram {
        static final String MECHANISM = "SCRAM-SHA-256";
        /** MongoDB's default for SCRAM-SHA-256; drivers refuse fewer than 4096. */
        private static final int ITERATIONS = 15000;
        /** MongoDB runs one conversation per connection and always numbers it 1. */
        private static final int CONVERSATION_ID = 1;
        private static final SecureRandom RANDOM = new SecureRandom();
        /** Unknown users run the same exchange against keys nobody has, and fail at the proof. */
        private static final Credential NOBODY = new Credential(random(28), random(32), random(32));

        /** What the server keeps per user; the password itself is dropped after loading. */
        record Credential(byte[] salt, byte[] storedKey, byte[] serverKey) {
            static Credential derive(String password) {
                byte[] salt = random(28);
                byte[] salted = pbkdf2(password, salt);
                return new Credential(salt, sha256(hmac(salted, "Client Key")), hmac(salted, "Server Key"));
            }
        }

        /** The state of one connection: who it is, and any exchange in progress. */
        static final class Session {
            private volatile String user;
            private Exchange exchange;

            boolean authenticated() {
                return user != null;
            }

            /** saslStart: client-first-message in, server-first-message out. */
            synchronized Document start(Map<String, Credential> users, String database, Document command) {
                exchange = null;
                Object mechanism = command.get("mechanism");
                if (!MECHANISM.equals(mechanism)) {
                    throw new MongoServerError(334, "MechanismUnavailable",
                            "Received authentication for mechanism " + mechanism + " which is not enabled");
                }
                // Users live in admin only, as authSource=admin says.
                if (!"admin".equals(database)) {
                    throw failed();
                }
                String clientFirst = payload(command);
                // gs2-header: "n" or "y" (no channel binding), and no authzid.
                if (!clientFirst.startsWith("n,,") && !clientFirst.startsWith("y,,")) {
                    throw failed();
                }
                String gs2Header = clientFirst.substring(0, 3);
                String clientFirstBare = clientFirst.substring(3);
                String[] fields = clientFirstBare.split(",", -1);
                // A leading "m=" (mandatory extension) is not "n=" and so refused here.
                if (fields.length < 2 || !fields[0].startsWith("n=") || !fields[1].startsWith("r=")
                        || fields[1].length() == 2) {
                    throw failed();
                }
                String name = decodeSaslName(fields[0].substring(2));
                Credential credential = users.getOrDefault(name, NOBODY);
                String nonce = fields[1].substring(2) + Base64.getEncoder().encodeToString(random(24));
                String serverFirst = "r=" + nonce + ",s=" + Base64.getEncoder().encodeToString(credential.salt())
                        + ",i=" + ITERATIONS;
                boolean skipEmptyExchange = command.get("options") instanceof Document options
                        && Boolean.TRUE.equals(options.get("skipEmptyExchange"));
                exchange = new Exchange(name, credential, gs2Header, nonce,
                        clientFirstBare + "," + serverFirst, skipEmptyExchange);
                return reply(false, serverFirst);
            }

            /** saslContinue: the client's proof, then (without skipEmptyExchange) an empty ack. */
            synchronized Document next(Document command) {
                Exchange current = exchange;
                exchange = null;
                if (current == null || !(command.get("conversationId") instanceof Number id)
                        || id.intValue() != CONVERSATION_ID) {
                    throw failed();
                }
                String message = payload(command);
                if (current.proved) {
                    if (!message.isEmpty()) {
                        throw failed();
                    }
                    user = current.user;
                    return reply(true, "");
                }
                String serverFinal = current.verify(message);
                if (current.skipEmptyExchange) {
                    user = current.user;
                    return reply(true, serverFinal);
                }
                current.proved = true;
                exchange = current;
                return reply(false, serverFinal);
            }
        }

        /** One exchange after the server-first-message, waiting for the client's proof. */
        private static final class Exchange {
            final String user;
            final Credential credential;
            final String gs2Header;
            final String nonce;
            final String firstMessages;
            final boolean skipEmptyExchange;
            boolean proved;

            Exchange(String user, Credential credential, String gs2Header, String nonce,
                    String firstMessages, boolean skipEmptyExchange) {
                this.user = user;
                this.credential = credential;
                this.gs2Header = gs2Header;
                this.nonce = nonce;
                this.firstMessages = firstMessages;
                this.skipEmptyExchange = skipEmptyExchange;
            }

            /** Checks client-final-message "c=..,r=..,p=proof"; returns server-final "v=..". */
            String verify(String clientFinal) {
                int proofAt = clientFinal.lastIndexOf(",p=");
                if (proofAt < 0) {
                    throw failed();
                }
                String withoutProof = clientFinal.substring(0, proofAt);
                String[] fields = withoutProof.split(",", -1);
                String binding = "c=" + Base64.getEncoder().encodeToString(gs2Header.getBytes(StandardCharsets.UTF_8));
                if (fields.length < 2 || !fields[0].equals(binding) || !fields[1].equals("r=" + nonce)) {
                    throw failed();
                }
                byte[] proof;
                try {
                    proof = Base64.getDecoder().decode(clientFinal.substring(proofAt + 3));
                } catch (IllegalArgumentException e) {
                    throw failed();
                }
                String authMessage = firstMessages + "," + withoutProof;
                // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) must be StoredKey.
                byte[] clientKey = hmac(credential.storedKey(), authMessage);
                if (proof.length != clientKey.length) {
                    throw failed();
                }
                for (int i = 0; i < clientKey.length; i++) {
                    clientKey[i] ^= proof[i];
                }
                if (!MessageDigest.isEqual(sha256(clientKey), credential.storedKey())) {
                    throw failed();
                }
                return "v=" + Base64.getEncoder().encodeToString(hmac(credential.serverKey(), authMessage));
            }
        }

        /**
         * Reads "user:password" lines. The password is everything after the first ':'. Errors
         * name the line, never its content, which may be a password.
         */
        static Map<String, Credential> loadUsers(Path file) throws java.io.IOException {
            Set<PosixFilePermission> permissions = Files.getPosixFilePermissions(file);
            for (PosixFilePermission permission : permissions) {
                if (!permission.name().startsWith("OWNER_")) {
                    throw new IllegalArgumentException(file + " must be readable by its owner only (chmod 600)");
                }
            }
            Map<String, Credential> users = new LinkedHashMap<>();
            List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
            for (int i = 0; i < lines.size(); i++) {
                String line = lines.get(i);
                if (line.isBlank() || line.strip().startsWith("#")) {
                    continue;
                }
                int colon = line.indexOf(':');
                String where = file + " line " + (i + 1) + ": ";
                if (colon <= 0 || colon == line.length() - 1) {
                    throw new IllegalArgumentException(where + "expected user:password");
                }
                String user = line.substring(0, colon);
                String password = line.substring(colon + 1);
                // SASLprep leaves printable ASCII unchanged, so these need no normalization.
                if (!printableAscii(user) || !printableAscii(password)) {
                    throw new IllegalArgumentException(where + "user and password must be printable ASCII");
                }
                if (users.put(user, Credential.derive(password)) != null) {
                    throw new IllegalArgumentException(where + "user " + user + " is listed twice");
                }
            }
            if (users.isEmpty()) {
                throw new IllegalArgumentException(file + " lists no users");
            }
            return users;
        }

        private static boolean printableAscii(String s) {
            return s.chars().allMatch(c -> c >= 0x20 && c < 0x7f);
        }

        /** RFC 5802 saslname: "=2C" is ',' and "=3D" is '='; any other '=' is malformed. */
        private static String decodeSaslName(String name) {
            StringBuilder out = new StringBuilder();
            for (int i = 0; i < name.length(); i++) {
                char c = name.charAt(i);
                if (c == '=') {
                    String escape = name.startsWith("=2C", i) ? "," : name.startsWith("=3D", i) ? "=" : null;
                    if (escape == null) {
                        throw failed();
                    }
                    out.append(escape);
                    i += 2;
                } else {
                    out.append(c);
                }
            }
            return out.toString();
        }

        private static String payload(Document command) {
            Object payload = command.get("payload");
            if (payload instanceof BinData data) {
                return new String(data.getData(), StandardCharsets.UTF_8);
            }
            if (payload instanceof String text) {
                return text;
            }
            throw failed();
        }

        private static Document reply(boolean done, String payload) {
            return new Document("conversationId", CONVERSATION_ID)
                    .append("done", done)
                    .append("payload", new BinData(payload.getBytes(StandardCharsets.UTF_8)));
        }

        /** One answer for every failure, as MongoDB gives, so it tells an attacker nothing. */
        private static MongoServerError failed() {
            return new MongoServerError(18, "AuthenticationFailed", "Authentication failed.");
        }

        private static byte[] random(int length) {
            byte[] bytes = new byte[length];
            RANDOM.nextBytes(bytes);
            return bytes;
        }

        private static byte[] pbkdf2(String password, byte[] salt) {
            try {
                PBEKeySpec spec = new PBEKeySpec(password.toCharArray(), salt, ITERATIONS, 256);
                return SecretKeyFactory.getInstance("PBKDF2WithHmacSHA256").generateSecret(spec).getEncoded();
            } catch (GeneralSecurityException e) {
                throw new IllegalStateException(e);
            }
        }

        private static byte[] hmac(byte[] key, String message) {
            try {
                Mac mac = Mac.getInstance("HmacSHA256");
                mac.init(new SecretKeySpec(key, "HmacSHA256"));
                return mac.doFinal(message.getBytes(StandardCharsets.UTF_8));
            } catch (GeneralSecurityException e) {
                throw new IllegalStateException(e);
            }
        }

        private static byte[] sha256(byte[] data) {
            try {
                return MessageDigest.getInstance("SHA-256").digest(data);
            } catch (GeneralSecurityException e) {
                throw new IllegalStateException(e);
            }
        }
    }
}
