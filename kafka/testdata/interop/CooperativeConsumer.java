// A Java consumer with the cooperative-sticky assignor, for ordo's interop
// test (kafka/interop_test.go): it joins the group given on the command line
// and prints "OWNED <partitions>" after every change of its assignment. It
// runs until its standard input is closed, then leaves the group.
//
//   java -cp "$HOME/.cache/ordo-kafka/4.4.0/lib/*" CooperativeConsumer.java <brokers> <group> <topic>

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;

import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;

public class CooperativeConsumer {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        p.put("group.id", args[1]);
        p.put("group.protocol", "classic");
        p.put("partition.assignment.strategy", "org.apache.kafka.clients.consumer.CooperativeStickyAssignor");
        p.put("key.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        p.put("value.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        p.put("session.timeout.ms", "10000");
        p.put("heartbeat.interval.ms", "200");
        p.put("auto.offset.reset", "earliest");
        Set<Integer> owned = new TreeSet<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
            consumer.subscribe(List.of(args[2]), new ConsumerRebalanceListener() {
                public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                    parts.forEach(tp -> owned.remove(tp.partition()));
                    System.out.println("OWNED " + owned);
                }

                public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                    parts.forEach(tp -> owned.add(tp.partition()));
                    System.out.println("OWNED " + owned);
                }

                public void onPartitionsLost(Collection<TopicPartition> parts) {
                    owned.clear();
                    System.out.println("LOST");
                }
            });
            Thread stdin = new Thread(() -> {
                try {
                    while (System.in.read() >= 0) {
                    }
                } catch (Exception e) {
                }
                consumer.wakeup();
            });
            stdin.setDaemon(true);
            stdin.start();
            while (true) {
                try {
                    consumer.poll(Duration.ofMillis(100));
                } catch (WakeupException e) {
                    break;
                }
            }
        }
        System.out.println("CLOSED");
    }
}
