"""TensorFlow's "MNIST for beginners", carried over line for line onto fastsoftmax.

The original (TensorFlow 1.x) is in the comments; each line below does the same job.
Run: python examples/tutorial.py [--dataset fashion-mnist]
"""

import argparse

import numpy as np

import fastsoftmax  # from tensorflow.examples.tutorials.mnist import input_data
from fastsoftmax.kernels import get_backend

parser = argparse.ArgumentParser()
parser.add_argument("--data_dir", default=None)
parser.add_argument("--dataset", default="mnist")
FLAGS = parser.parse_args()

# mnist = input_data.read_data_sets(FLAGS.data_dir, one_hot=True)
mnist = fastsoftmax.read_data_sets(FLAGS.data_dir, dataset=FLAGS.dataset, one_hot=True, seed=0)

# x = tf.placeholder(tf.float32, [None, 784])
# W = tf.Variable(tf.zeros([784, 10]))
# b = tf.Variable(tf.zeros([10]))
W = np.zeros((784, 10), np.float32)
b = np.zeros(10, np.float32)
kernels = get_backend("cpu")

# y = tf.matmul(x, W) + b; cross_entropy = tf.reduce_mean(softmax_cross_entropy_with_logits(...))
# train_step = tf.train.GradientDescentOptimizer(0.5).minimize(cross_entropy)
# (the loss is computed from the logits through log-sum-exp inside the kernels)

# for _ in range(1000):
#   batch_xs, batch_ys = mnist.train.next_batch(100)
#   sess.run(train_step, feed_dict={x: batch_xs, y_: batch_ys})
for _ in range(1000):
    batch_xs, batch_ys = mnist.train.next_batch(100)
    kernels.xent_sgd_step(batch_xs, batch_ys.argmax(1), W, b, 0.5)

# correct_prediction = tf.equal(tf.argmax(y, 1), tf.argmax(y_, 1))
# accuracy = tf.reduce_mean(tf.cast(correct_prediction, tf.float32))
# print(sess.run(accuracy, feed_dict={x: mnist.test.images, y_: mnist.test.labels}))
correct_prediction = kernels.predict(mnist.test.images, W, b) == mnist.test.labels.argmax(1)
print(np.mean(correct_prediction))
