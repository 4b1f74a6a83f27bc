import org.codelibs.elasticsearch.runner.ElasticsearchClusterRunner;

import java.util.concurrent.CountDownLatch;

/**
 * Runs a one-node Elasticsearch through the codelibs cluster runner on exactly the given port.
 *
 * Usage: ElasticsearchLauncher BASE_PATH HTTP_PORT CLUSTER_NAME
 *
 * The runner's own main class only searches ports up to 9299 and silently moves to the next free
 * one; capping the search at the requested port makes any port usable and a taken port an error.
 */
public final class ElasticsearchLauncher {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: ElasticsearchLauncher BASE_PATH HTTP_PORT CLUSTER_NAME");
            System.exit(2);
        }
        int httpPort = Integer.parseInt(args[1]);
        ElasticsearchClusterRunner runner = new ElasticsearchClusterRunner();
        runner.setMaxHttpPort(httpPort);
        // Node numbers start at 1 and are added to the base port.
        runner.build(ElasticsearchClusterRunner.newConfigs()
                .basePath(args[0])
                .numOfNode(1)
                .baseHttpPort(httpPort - 1)
                .clusterName(args[2]));
        System.out.println("elasticsearch listening on 127.0.0.1:" + httpPort);

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                runner.close();
            } catch (Exception e) {
                System.err.println("closing elasticsearch: " + e);
            }
            stopped.countDown();
        }));
        stopped.await();
    }
}
